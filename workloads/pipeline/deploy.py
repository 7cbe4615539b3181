"""The pipeline's last step: act on the gate's decision. Locally the champion alias moves; in the cluster, then,
the model-serving release's SeldonDeployment is patched to serve the new version.

Why a patch as well as the alias: the served model is read once, at start-up (MLKIT_MODEL_URI, by default
`models:/<model>@champion`), so pods go on serving the old version after the alias moves. The patch pins
MLKIT_MODEL_URI to `models:/<model>/<version>`: the pod template changes, Seldon rolls the pods, and the
SeldonDeployment says which version it serves. A later `helm upgrade` puts `@champion` back, the same version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workloads.pipeline.kube import SELDON_DEPLOYMENT, KubeApi, KubeError, pod_namespace

if TYPE_CHECKING:
    from workloads.training.train import Challenge

MODEL_URI_ENV = "MLKIT_MODEL_URI"  # charts/model-serving's container env


class DeployError(Exception):
    """The decision could not be carried out; the message says what did change (the alias) and what did not."""


@dataclass
class Deployment:
    promoted: bool
    reason: str
    details: dict = field(default_factory=dict)


class Deployer(ABC):
    @abstractmethod
    def deploy(self, model: str, version: str, challenge: Challenge) -> Deployment: ...


class AliasDeployer(Deployer):
    """The champion alias, moved only if the gate passed and the champion is still the one it was compared with."""

    def deploy(self, model: str, version: str, challenge: Challenge) -> Deployment:
        from workloads.training.train import promote

        promoted, reason = promote(model, version, challenge)
        return Deployment(promoted, reason, {"alias": f"{model}@champion -> v{version}" if promoted else None})


@dataclass
class SeldonDeployer(AliasDeployer):
    """The alias, then the release's SeldonDeployment pinned to the new version (nothing changes when not promoted)."""

    release: str
    namespace: str = ""
    api: KubeApi | None = None

    def deploy(self, model: str, version: str, challenge: Challenge) -> Deployment:
        done = super().deploy(model, version, challenge)
        if not done.promoted or not self.release:
            return done
        namespace = pod_namespace(self.namespace)
        uri = f"models:/{model}/{version}"
        try:
            api = self.api or KubeApi()
            current = api.get(SELDON_DEPLOYMENT, namespace, self.release)
            if current is None:
                raise DeployError(f"no SeldonDeployment {self.release!r} in namespace {namespace}")
            api.json_patch(SELDON_DEPLOYMENT, namespace, self.release, seldon_patch(current, model, uri))
        except (KubeError, DeployError) as e:
            raise DeployError(
                f"v{version} is the champion now, but SeldonDeployment {namespace}/{self.release} still serves the "
                f"old version: {e}; patch it by hand or run the deploy step again"
            ) from None
        return Deployment(
            True, done.reason, {**done.details, "seldonDeployment": f"{namespace}/{self.release}", "modelUri": uri}
        )


def seldon_patch(seldon_deployment: dict, model: str, uri: str) -> list[dict]:
    """JSON-patch operations that set every model container's MLKIT_MODEL_URI to ``uri``, each guarded by a
    `test` of the value read, so a concurrent edit makes the patch fail instead of being overwritten."""
    name = seldon_deployment.get("metadata", {}).get("name", "?")
    operations: list[dict] = []
    for p, predictor in enumerate(seldon_deployment.get("spec", {}).get("predictors") or []):
        for c, component in enumerate(predictor.get("componentSpecs") or []):
            for k, container in enumerate((component.get("spec") or {}).get("containers") or []):
                for e, variable in enumerate(container.get("env") or []):
                    if variable.get("name") != MODEL_URI_ENV:
                        continue
                    served = variable.get("value", "")
                    if not (
                        served.startswith((f"models:/{model}@", f"models:/{model}/")) or served == f"models:/{model}"
                    ):
                        raise DeployError(
                            f"SeldonDeployment {name} serves {served!r}, not a registered version of {model}: "
                            f"left as it is"
                        )
                    path = f"/spec/predictors/{p}/componentSpecs/{c}/spec/containers/{k}/env/{e}/value"
                    operations += [
                        {"op": "test", "path": path, "value": served},
                        {"op": "replace", "path": path, "value": uri},
                    ]
    if not operations:
        raise DeployError(
            f"SeldonDeployment {name} has no container with {MODEL_URI_ENV}: not the model-serving chart's"
        )
    return operations
