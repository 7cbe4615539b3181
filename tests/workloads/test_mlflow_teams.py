"""MLflow between teams, for real: a real `mlflow server` set up as the platform sets it up.

The server's flags, its auth config, the team users synced by the init container's command and the
passwords derived from the database credential all come from workloads/mlflow/auth.py, which the
Pulumi component renders (tests/infra/test_mlflow_auth.py checks that side). SQLite stands in for
PostgreSQL and a local directory for the bucket; tracking, registry, auth and the artifact proxy are
MLflow's own. Team clients authenticate as workloads in the cluster do: MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD in the environment (the Secret mlflow-credentials in the team's namespace).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from mlkit_dev.local import REPO, LocalProcess, free_port
from workloads.mlflow import auth

# The credential the platform derives every MLflow password from (the database URL's).
ROOT = "postgresql://mlflow:a-database-password-for-tests@postgres:5432/mlflow"
MODEL = "churn-classifier"


class PlatformMlflow(LocalProcess):
    """`mlflow server` with the platform's flags and auth config, its users synced as the init container does."""

    def __init__(self, home: Path, teams: list[str]):
        self.home, self.port = home, free_port()
        self.database = f"sqlite:///{home / 'mlflow.db'}"
        (home / "auth").mkdir()
        (home / "auth" / auth.AUTH_CONFIG).write_text(auth.auth_config(self.database, auth.admin_password(ROOT)))
        self.env = {
            **os.environ,
            **auth.server_env(str(home / "auth")),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": auth.flask_secret_key(ROOT),
        }
        self.write_users(teams)
        assert self.sync().returncode == 0
        args = auth.server_args(
            host="127.0.0.1",
            port=self.port,
            backend_store_uri=self.database,
            artifacts_destination=(home / "bucket" / "mlflow").as_uri(),
        )
        executable = str(REPO / ".venv" / "workloads" / "bin" / "mlflow")
        super().__init__([executable, *args[1:], "--workers", "1"], f"{self.url}/health", self.env, start_s=150)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_users(self, teams: list[str], passwords: dict[str, str] | None = None) -> Path:
        """The users Secret as its volume holds it: one file per user, plus the kubelet's ..data entries."""
        users = self.home / "users"
        users.mkdir(exist_ok=True)
        for path in users.iterdir():
            path.unlink()
        (users / "..data").write_text("")
        for team in teams:
            password = (passwords or {}).get(team) or auth.team_password(ROOT, team)
            (users / auth.team_username(team)).write_text(password)
        return users

    def sync(self) -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            str(REPO / "workloads" / "mlflow" / "auth.py"),
            "sync",
            "--users",
            str(self.home / "users"),
        ]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with PlatformMlflow(tmp_path_factory.mktemp("mlflow"), ["churn", "fraud"]) as running:
        yield running


@contextlib.contextmanager
def as_team(server: PlatformMlflow, team: str):
    """The MLflow client's environment in a team's pod: the server, and the mlflow-credentials Secret."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", auth.USERNAME_KEY, auth.PASSWORD_KEY)
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    os.environ[auth.USERNAME_KEY] = auth.team_username(team)
    os.environ[auth.PASSWORD_KEY] = auth.team_password(ROOT, team)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def churn(server, tmp_path_factory):
    """Team churn's experiment, run, model artifact and registered champion, made through the server."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    files = tmp_path_factory.mktemp("model")
    (files / "MLmodel").write_text("churn's model\n")
    with as_team(server, "churn"):
        experiment = client.create_experiment(MODEL)
        run = client.create_run(experiment)
        client.log_artifact(run.info.run_id, str(files / "MLmodel"), "model")
        client.create_registered_model(MODEL)
        version = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id)
        client.set_registered_model_alias(MODEL, "champion", version.version)
    return {"client": client, "experiment": experiment, "run": run.info.run_id, "version": version.version}


def refused(attempt) -> str | None:
    """None when the server refused ``attempt`` with 403; otherwise what happened instead."""
    from mlflow.exceptions import MlflowException

    try:
        result = attempt()
    except (MlflowException, requests.HTTPError) as e:
        return None if "403" in str(e) or "PERMISSION_DENIED" in str(e) else f"failed otherwise: {str(e)[:200]}"
    return f"allowed: {str(result)[:120]}"


def test_a_team_can_neither_read_nor_change_another_teams_runs_models_or_alias(server, churn, tmp_path):
    import mlflow

    client, run, version = churn["client"], churn["run"], churn["version"]
    (tmp_path / "evil").write_text("fraud was here\n")
    attempts = {
        "read the experiment": lambda: client.get_experiment(churn["experiment"]),
        "read the run": lambda: client.get_run(run),
        "list the run's artifacts": lambda: client.list_artifacts(run, "model"),
        "download the run's artifact": lambda: client.download_artifacts(run, "model/MLmodel", str(tmp_path)),
        "load the champion": lambda: mlflow.artifacts.download_artifacts(
            f"models:/{MODEL}@champion", dst_path=str(tmp_path)
        ),
        "read the registered model": lambda: client.get_registered_model(MODEL),
        "resolve the alias": lambda: client.get_model_version_by_alias(MODEL, "champion"),
        "log into the run": lambda: client.log_metric(run, "auc", 0.0),
        "overwrite the run's artifact": lambda: client.log_artifact(run, str(tmp_path / "evil"), "model"),
        "add a version to the model": lambda: client.create_model_version(MODEL, "mlflow-artifacts:/0/x/artifacts"),
        "move the alias": lambda: client.set_registered_model_alias(MODEL, "champion", version),
        "delete the alias": lambda: client.delete_registered_model_alias(MODEL, "champion"),
        "delete the version": lambda: client.delete_model_version(MODEL, version),
        "delete the model": lambda: client.delete_registered_model(MODEL),
        "delete the run": lambda: client.delete_run(run),
    }
    with as_team(server, "fraud"):
        outcomes = {what: refused(attempt) for what, attempt in attempts.items()}
        # fraud's own work goes through: the refusals above are about whose things they are.
        own = client.create_experiment("fraud-detector")
        client.create_registered_model("fraud-detector")
        listed = {e.name for e in client.search_experiments()} | {m.name for m in client.search_registered_models()}
    assert {what: outcome for what, outcome in outcomes.items() if outcome} == {}
    assert listed == {"fraud-detector"}, "fraud's searches list another team's experiments or models"
    with as_team(server, "churn"):
        assert client.get_model_version_by_alias(MODEL, "champion").version == version
        assert (Path(client.download_artifacts(run, "model/MLmodel", str(tmp_path / "churn"))).read_text()) == (
            "churn's model\n"
        )
        assert client.get_run(run).info.lifecycle_stage == "active"
        assert refused(lambda: client.get_experiment(own)) is None  # and the other way round


def test_no_login_or_a_wrong_password_gets_nothing(server, churn):
    for credentials in (None, (auth.team_username("churn"), "not-the-password"), ("team-nobody", "x" * 20)):
        response = requests.get(
            f"{server.url}/api/2.0/mlflow/experiments/get",
            params={"experiment_id": churn["experiment"]},
            auth=credentials,
            timeout=30,
        )
        assert response.status_code == 401, (credentials, response.status_code, response.text[:200])


def test_a_team_removed_or_a_password_rotated_loses_the_old_login(server, churn):
    """What the init container does on the next pod start: the users become exactly the Secret's."""
    probe = f"{server.url}/api/2.0/mlflow/registered-models/search"
    rotated = "a-rotated-password-for-churn"
    server.write_users(["churn"], {"churn": rotated})
    try:
        result = server.sync()
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == "mlflow users: reset the password of team-churn; deleted team-fraud"
        fraud = (auth.team_username("fraud"), auth.team_password(ROOT, "fraud"))
        assert requests.get(probe, auth=fraud, timeout=30).status_code == 401
        old = (auth.team_username("churn"), auth.team_password(ROOT, "churn"))
        assert requests.get(probe, auth=old, timeout=30).status_code == 401
        assert requests.get(probe, auth=(auth.team_username("churn"), rotated), timeout=30).status_code == 200
    finally:
        server.write_users(["churn", "fraud"])
        assert server.sync().returncode == 0


def test_the_sync_refuses_a_user_that_is_not_a_team_in_one_line(server):
    users = server.write_users(["churn", "fraud"])
    (users / "admin").write_text("x" * 20)
    try:
        result = server.sync()
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"mlflow users: {users / 'admin'}: a team user's name starts with 'team-'\n"
    finally:
        (users / "admin").unlink()
