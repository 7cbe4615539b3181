"""Where a workload learns its place on the platform: the team profile, read once at start-up.

In the cluster the charts mount the team's ConfigMap ``mlkit-team-profile`` (key ``profile.json``)
at /etc/mlkit/profile and set MLKIT_TEAM to the team they were rendered for; the profile gives the
store roots, the object store and its settings. On a laptop there is no profile: URIs are passed
explicitly and the store's endpoint and keys come from the environment (storage.ObjectStore.from_env).

Every environment variable a workload reads is named here, nowhere else:

    MLKIT_PROFILE           path of profile.json (default /etc/mlkit/profile/profile.json when it exists)
    MLKIT_TEAM              the team the workload runs for; a profile of another team is refused
    POD_NAMESPACE           (downward API) the namespace the pod runs in; must be the profile's
    MLKIT_FEATURE_STORE     the feature store root (default: the profile's featureStore)
    MLKIT_MODEL_URI         serving: the model to serve (see serving/artifacts.py)
    MLKIT_REQUEST_LOG       serving: where answered requests are logged (unset or empty: off)
    MLKIT_REQUEST_LOG_FLUSH_SECONDS, MLKIT_REQUEST_LOG_SPOOL   serving: request-log batching and spool directory
    MLKIT_MAX_REQUEST_BYTES, MLKIT_STOP_SECONDS                serving: request size limit, stop deadline
    MLKIT_SPARK_MASTER, MLKIT_SPARK_SHUFFLE_PARTITIONS, MLKIT_SPARK_DRIVER_MEMORY,
    MLKIT_SPARK_LOG_LEVEL   a local Spark session (ignored in the cluster, where the operator sets Spark up)
    MLKIT_TABLE_LOCK_WAIT_S how long a writer waits for a feature table's lock
    MLKIT_PUSHGATEWAY       feature job, drift job: push their metrics here
    MLKIT_TRIGGER_TOKEN     retraining trigger: the bearer token Alertmanager sends (or --token-file, the chart's)
    MLKIT_DATA_DIR          local runs: where the demo and the default MLflow store write (default ./data)
    MLKIT_CODE_VERSION      training: the code version recorded with each run (default: git)
    the object store's own: AWS_*, MLKIT_STORE_ENDPOINT, MLKIT_S3_PATH_STYLE, AZURE_STORAGE_ACCOUNT/KEY
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import ValidationError

from mlkit_contract import PROFILE_CONFIGMAP, PROFILE_KEY, PROFILE_MOUNT, TeamProfile
from workloads.common.models import problems
from workloads.common.storage import ACCEPTED, ObjectStore, StorageError, scheme_of


class SettingsError(RuntimeError):
    """A workload cannot start with this profile or setting; the message names which and why."""


def env(name: str, default: str | None = None) -> str | None:
    """One MLKIT_* (or other) setting; an empty value counts as unset."""
    return os.environ.get(name) or default


def env_float(name: str, default: float) -> float:
    raw = env(name)
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def load_profile(
    path: Path | None = None, *, team: str | None = None, namespace: str | None = None
) -> TeamProfile | None:
    """The team profile at ``path`` (MLKIT_PROFILE, else the chart's mount), checked against the team and
    namespace this workload runs for; None when no profile is configured and none is mounted (a local run)."""
    configured = path or (Path(p) if (p := env("MLKIT_PROFILE")) else None)
    path = configured or Path(PROFILE_MOUNT)
    team = team or env("MLKIT_TEAM")
    namespace = namespace or env("POD_NAMESPACE")
    where = f"the team profile {path} (ConfigMap {PROFILE_CONFIGMAP}, key {PROFILE_KEY})"
    if not path.exists():
        if configured or team:
            raise SettingsError(
                f"{where} is missing: run in a team namespace the platform created (the chart mounts its "
                f"{PROFILE_CONFIGMAP} ConfigMap) or point MLKIT_PROFILE at the team's profile (pulumi stack output teamProfiles)"
            )
        return None
    try:
        profile = TeamProfile.model_validate(json.loads(path.read_text()))
    except OSError as e:
        raise SettingsError(f"{where} cannot be read: {e.strerror}") from None
    except ValueError as e:
        raise SettingsError(f"{where} is not a team profile: {_first_error(e)}") from None
    if team and profile.team != team:
        raise SettingsError(
            f"{where} is team {profile.team!r}'s, but this workload runs for team {team!r} (MLKIT_TEAM)"
        )
    if namespace and profile.namespace != namespace:
        raise SettingsError(
            f"{where} is for namespace {profile.namespace!r}, but this pod runs in {namespace!r}: "
            f"each team's workloads run in its own namespace"
        )
    return profile


def _first_error(e: ValueError) -> str:
    if isinstance(e, ValidationError):
        listed = problems(e, root="(profile)")
        return listed[0] + (f" (and {len(listed) - 1} more)" if len(listed) > 1 else "")
    return str(e)


@dataclass(frozen=True)
class Settings:
    """The profile (if any) and the object store this process reads and writes."""

    profile: TeamProfile | None
    store: ObjectStore

    @classmethod
    def load(cls) -> Settings:
        profile = load_profile()
        return cls(profile, ObjectStore.from_profile(profile) if profile else ObjectStore.from_env())

    @property
    def namespace(self) -> str:
        """Where this process's pushed metrics belong: the profile's namespace, the pod's, else ``local``.
        Alertmanager hands an alert to the team whose namespace it carries."""
        return self.profile.namespace if self.profile else env("POD_NAMESPACE") or "local"

    def feature_store(self, given: str | None = None) -> str:
        """The feature-store root: ``given`` (a flag or MLKIT_FEATURE_STORE), else the profile's."""
        root = given or env("MLKIT_FEATURE_STORE") or (self.profile.feature_store if self.profile else None)
        if not root:
            raise SettingsError("no feature store: pass --store, set MLKIT_FEATURE_STORE, or run with a team profile")
        return self.check_uri(root, "feature store")

    def check_uri(self, uri: str, what: str) -> str:
        """``uri`` if this layer serves its scheme and (with a profile) it lies inside the team's root."""
        try:
            scheme = scheme_of(uri)
        except StorageError:
            raise SettingsError(f"{what} {uri!r}: unsupported scheme. Accepted: {ACCEPTED}") from None
        if self.profile and not self.profile.contains(uri):
            hint = " (a local path on a cluster writes nowhere durable)" if scheme == "file" else ""
            raise SettingsError(
                f"{what} {uri!r} is outside team {self.profile.team!r}'s root {self.profile.root}{hint}: "
                "the team's identity may read and write only there"
            )
        return uri


@cache
def settings() -> Settings:
    """This process's settings, loaded once."""
    return Settings.load()
