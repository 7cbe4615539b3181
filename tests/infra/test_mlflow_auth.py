"""MLflow is no open path between teams: the platform under mocks, for every shipped stack.

The server runs MLflow's basic-auth app with no access by default, each team gets one MLflow user whose
credentials land in its own namespace only, and every password stays a Pulumi secret. What the server
then enforces is shown with a real `mlflow server` in tests/workloads/test_mlflow_teams.py.
"""

from __future__ import annotations

import configparser

import pulumi
import pytest

from infra.stack import REPO_ROOT, parse_stack
from tests.infra.pulumi_mocks import SECRET_SIG, Recorder, unsecret
from tests.infra.test_clouds import STACKS, config_of
from tests.infra.test_platform import platform_of
from tests.infra.test_schema import stack_values
from workloads.mlflow import auth

SECRET = "kubernetes:core/v1:Secret"


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    return request.param, platform_of(config_of(request.param))


def secrets_named(mocks: Recorder, name: str) -> dict[str, dict]:
    """namespace -> the Secret ``name`` there, as recorded (secret wrappers kept)."""
    return {
        s.inputs["metadata"]["namespace"]: s.inputs
        for s in mocks.of_type(SECRET)
        if s.inputs["metadata"]["name"] == name
    }


def server_pod(mocks: Recorder) -> dict:
    [deployment] = [
        d for d in mocks.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == "mlflow"
    ]
    return deployment.inputs["spec"]["template"]["spec"]


def test_the_server_runs_the_auth_app_and_grants_nothing_by_default(stack):
    name, mocks = stack
    pod = server_pod(mocks)
    [server] = pod["containers"]
    assert server["args"][server["args"].index("--app-name") + 1] == "basic-auth", f"{name}: {server['args']}"
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == f"{auth.AUTH_DIR}/{auth.AUTH_CONFIG}"
    assert {"name": "auth", "mountPath": auth.AUTH_DIR, "readOnly": True} in server["volumeMounts"]
    ini = configparser.ConfigParser()
    ini.read_string(unsecret(secrets_named(mocks, "mlflow-auth")["mlflow"]["stringData"])[auth.AUTH_CONFIG])
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS", name
    # Users and grants live in the tracking database, which survives a pod restart (a SQLite file would not).
    url = unsecret(secrets_named(mocks, "mlflow-database")["mlflow"]["stringData"])["url"]
    assert ini["mlflow"]["database_uri"] == url, name


def test_each_team_gets_its_own_mlflow_user_in_its_own_namespace(stack):
    name, mocks = stack
    teams = [t.name for t in config_of(name).teams]
    credentials = secrets_named(mocks, auth.CREDENTIALS_SECRET)
    assert sorted(credentials) == sorted(teams), f"{name}: mlflow-credentials in {sorted(credentials)}"
    logins = {team: unsecret(credentials[team]["stringData"]) for team in teams}
    for team, login in logins.items():
        assert login[auth.USERNAME_KEY] == f"team-{team}", f"{name}/{team}: {login[auth.USERNAME_KEY]}"
        assert len(login[auth.PASSWORD_KEY]) >= 32, f"{name}/{team}: short password"
    assert len({login[auth.PASSWORD_KEY] for login in logins.values()}) == len(teams), f"{name}: teams share a password"
    # The server's copy: exactly these users, which its init container puts into the auth store.
    users = unsecret(secrets_named(mocks, "mlflow-users")["mlflow"]["stringData"])
    assert users == {login[auth.USERNAME_KEY]: login[auth.PASSWORD_KEY] for login in logins.values()}, name
    [sync] = server_pod(mocks)["initContainers"]
    assert sync["args"] == ["python", auth.IMAGE_PATH, "sync", "--users", auth.USERS_DIR], f"{name}: {sync['args']}"
    volumes = {v["name"]: v for v in server_pod(mocks)["volumes"]}
    mount = next(m for m in sync["volumeMounts"] if m["mountPath"] == auth.USERS_DIR)
    assert volumes[mount["name"]]["secret"]["secretName"] == "mlflow-users", name


def test_the_mlflow_image_carries_the_sync_where_the_init_container_runs_it():
    dockerfile = (REPO_ROOT / "workloads" / "mlflow" / "Dockerfile").read_text()
    assert f"COPY auth.py {auth.IMAGE_PATH}\n" in dockerfile
    assert "Flask-WTF==" in dockerfile  # MLflow's basic-auth app refuses to start without it


def test_every_mlflow_password_is_a_pulumi_secret(stack):
    name, mocks = stack
    for secret in ("mlflow-auth", "mlflow-users", auth.CREDENTIALS_SECRET):
        written = secrets_named(mocks, secret)
        assert written, f"{name}: no Secret {secret}"
        for namespace, inputs in written.items():
            assert SECRET_SIG in inputs["stringData"], f"{name}: {namespace}/{secret} is plain text in the state"


def test_a_managed_database_password_too_short_to_derive_from_is_refused():
    values = stack_values("aws")
    values["platform"] = {
        **values.get("platform", {}),
        "mlflow": {"databaseUrl": "postgresql://mlflow:short@db:5432/mlflow"},
    }
    with pytest.raises(pulumi.RunError) as refused:
        platform_of(parse_stack(values, "aws", decrypted=True))
    assert str(refused.value) == (
        "platform.mlflow.databaseUrl: its password has 5 characters, expected at least 16: the teams' MLflow "
        "credentials are derived from it (docs/security.md); use a generated one"
    )


def test_a_managed_database_is_where_users_live_and_what_passwords_derive_from():
    values = stack_values("aws")
    url = "postgresql://mlflow:Hx8vQ2mW7rLk4pZt9sYc@db.example.internal:5432/mlflow"
    values["platform"] = {**values.get("platform", {}), "mlflow": {"databaseUrl": url}}
    mocks = platform_of(parse_stack(values, "aws", decrypted=True))
    assert not mocks.of_type("kubernetes:apps/v1:StatefulSet")  # no in-cluster PostgreSQL, no pulumi-random
    assert not mocks.of_type("random:index/randomPassword:RandomPassword")
    ini = configparser.ConfigParser()
    ini.read_string(unsecret(secrets_named(mocks, "mlflow-auth")["mlflow"]["stringData"])[auth.AUTH_CONFIG])
    assert ini["mlflow"]["database_uri"] == url
    login = unsecret(secrets_named(mocks, auth.CREDENTIALS_SECRET)["churn"]["stringData"])
    assert login[auth.PASSWORD_KEY] == auth.team_password(url, "churn")
