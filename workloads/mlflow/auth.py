"""MLflow's authentication for the platform: one MLflow user per team, nothing readable by default.

One module for the facts both sides need: the Pulumi component (infra/components/mlflow.py) renders
the server's flags and auth config from here, and the MLflow image runs ``python auth.py sync`` as
the server pod's init container to put the teams' users into the auth store. docs/security.md says
what this does and does not guarantee.

Credentials are derived, not generated: ``team_password(root, team)`` is an HMAC of the team's name
under the MLflow database credential, a key that already grants everything MLflow holds. So the
platform needs no password generator at deploy time (pulumi-random), a second ``pulumi up`` changes
nothing, and rotating the database credential rotates every team's password with it.

Stdlib only at import time (the infra environment imports it); mlflow is imported where needed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import sys
import warnings
from pathlib import Path
from typing import Any

# Where the server pod mounts the two Secrets the platform writes.
AUTH_DIR = "/etc/mlkit/mlflow-auth"  # basic_auth.ini (holds the database URL) and the Flask secret key
USERS_DIR = "/etc/mlkit/mlflow-users"  # one file per team user: its name is the username, its text the password
AUTH_CONFIG = "basic_auth.ini"
IMAGE_PATH = "/opt/mlkit/auth.py"  # where workloads/mlflow/Dockerfile puts this file
ADMIN_USERNAME = "mlkit-admin"
# Users whose names start with this are the kit's: sync creates, rotates and deletes them.
TEAM_USER_PREFIX = "team-"
# The Secret in each team's namespace: these key names are the environment variables MLflow's client reads.
CREDENTIALS_SECRET = "mlflow-credentials"
USERNAME_KEY = "MLFLOW_TRACKING_USERNAME"
PASSWORD_KEY = "MLFLOW_TRACKING_PASSWORD"


def team_username(team: str) -> str:
    return f"{TEAM_USER_PREFIX}{team}"


def derive(root: str, purpose: str) -> str:
    """A 43-character secret for ``purpose`` (a team, the admin, the session key), one-way from ``root``."""
    if not root:
        raise ValueError("MLflow's credentials are derived from the database credential, which is empty")
    digest = hmac.new(root.encode(), f"mlkit-mlflow:{purpose}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def team_password(root: str, team: str) -> str:
    return derive(root, f"user:{team_username(team)}")


def admin_password(root: str) -> str:
    return derive(root, f"user:{ADMIN_USERNAME}")


def flask_secret_key(root: str) -> str:
    return derive(root, "flask-secret-key")


def auth_config(database_uri: str, admin_pass: str) -> str:
    """The basic-auth app's config: its store in the tracking database, and no access without a grant.

    ``default_permission = NO_PERMISSIONS``: a user reads and changes only what it created (MLflow
    grants the creator MANAGE on each experiment and registered model) or was granted by an admin.
    """
    return "\n".join(
        [
            "[mlflow]",
            "default_permission = NO_PERMISSIONS",
            # Its own tables and alembic_version_auth, beside the tracking tables: one database to back up.
            f"database_uri = {database_uri}",
            f"admin_username = {ADMIN_USERNAME}",
            f"admin_password = {admin_pass}",
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
            "",
        ]
    )


def server_args(*, host: str, port: int, backend_store_uri: str, artifacts_destination: Any) -> list[Any]:
    """``mlflow server`` as the platform runs it: the auth app on, artifacts proxied (and checked) by the server.

    ``artifacts_destination`` may be a Pulumi Output (the component passes the bucket's URI).
    """
    return [
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        host,
        "--port",
        str(port),
        "--backend-store-uri",
        backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts_destination,
    ]


def server_env(auth_dir: str = AUTH_DIR) -> dict[str, str]:
    return {
        "MLFLOW_AUTH_CONFIG_PATH": f"{auth_dir}/{AUTH_CONFIG}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # MLflow 3's job runner (GenAI scorers) starts seven worker processes per server; the platform uses none.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


class SyncError(Exception):
    def __init__(self, message: str):
        super().__init__(f"mlflow users: {message}")


def sync(users_dir: Path) -> list[str]:
    """Make the auth store's team users exactly the files in ``users_dir``; return one line per change.

    Creates missing users, resets a password that changed, deletes ``team-*`` users no file names
    (a team removed from the stack loses its login; its grants go with it). The admin user is
    created as the server does it (from the config's admin_password) and its password kept current.
    """
    if not users_dir.is_dir():
        raise SyncError(f"{users_dir}: no such directory (the mlflow-users Secret's mount)")
    wanted = {}
    for path in sorted(users_dir.iterdir()):
        if path.name.startswith("."):  # the Secret volume's ..data links
            continue
        if not path.name.startswith(TEAM_USER_PREFIX):
            raise SyncError(f"{path}: a team user's name starts with {TEAM_USER_PREFIX!r}")
        wanted[path.name] = path.read_text().strip()
    with warnings.catch_warnings():  # the auth package imports the server's web stack, which warns on import
        warnings.simplefilter("ignore")
        from mlflow.exceptions import MlflowException
        from mlflow.server.auth.config import read_auth_config
        from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
        from sqlalchemy.exc import SQLAlchemyError

    config = read_auth_config()
    if not config.admin_password:
        raise SyncError("the auth config names no admin_password")
    wanted_admin = {config.admin_username: config.admin_password}
    store = SqlAlchemyStore()
    try:
        store.init_db(config.database_uri)
        changes = []
        for username, password in {**wanted_admin, **wanted}.items():
            if not store.has_user(username, use_primary=True):
                store.create_user(username, password, is_admin=username in wanted_admin)
                changes.append(f"created {username}")
            elif not store.authenticate_user(username, password, use_primary=True):
                store.update_user(username, password=password)
                changes.append(f"reset the password of {username}")
        for user in store.list_users():
            if user.username.startswith(TEAM_USER_PREFIX) and user.username not in wanted:
                store.delete_user(user.username)
                changes.append(f"deleted {user.username}")
    except MlflowException as e:
        raise SyncError(e.message) from e
    except SQLAlchemyError as e:  # the database unreachable, or refusing the credential
        raise SyncError(f"the auth database: {str(getattr(e, 'orig', None) or e).splitlines()[0]}") from e
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auth.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("sync", help="put the team users of --users into the auth store")
    run.add_argument("--users", type=Path, default=Path(USERS_DIR))
    args = parser.parse_args(argv)
    try:
        changes = sync(args.users)
    except SyncError as e:
        print(e, file=sys.stderr)
        return 1
    print("mlflow users: " + ("; ".join(changes) if changes else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
