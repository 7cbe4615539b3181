"""The few Kubernetes API calls the pipeline's cluster steps make (custom objects only), as the pod's service account."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """An API call failed; the message names the object and the API server's answer."""


@dataclass(frozen=True)
class Resource:
    """A custom resource type: its group, version and plural, as the API server's paths spell them."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


SPARK_APPLICATION = Resource("sparkoperator.k8s.io", "v1beta2", "sparkapplications", "SparkApplication")
SCHEDULED_SPARK_APPLICATION = Resource(
    "sparkoperator.k8s.io", "v1beta2", "scheduledsparkapplications", "ScheduledSparkApplication"
)
SELDON_DEPLOYMENT = Resource("machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment")


def pod_namespace(given: str = "") -> str:
    """``given``, else the namespace of this pod's service account."""
    if given:
        return given
    try:
        return (SERVICE_ACCOUNT / "namespace").read_text().strip()
    except OSError:
        raise KubeError(
            f"no namespace given and none at {SERVICE_ACCOUNT / 'namespace'} (not in a pod): pass the team's namespace"
        ) from None


class KubeApi:
    """Custom objects through the API server. In a pod: its service account's token and CA; else a kubeconfig."""

    def __init__(self, api_client=None):
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException as e:
                raise KubeError(
                    f"not in a pod with a service account token ({e}); cluster steps run in the cluster"
                ) from None
            api_client = client.ApiClient()
        self._custom = client.CustomObjectsApi(api_client)

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> KubeApi:
        from kubernetes import config

        return cls(config.new_client_from_config(config_file=path, context=context))

    def _call(self, what: str, call, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException

        try:
            return call(*args, **kwargs)
        except ApiException as e:
            raise KubeError(f"{what}: {e.status} {e.reason}: {_message(e.body)}") from None

    def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._custom.get_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural, name
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise KubeError(
                f"get {resource.kind} {namespace}/{name}: {e.status} {e.reason}: {_message(e.body)}"
            ) from None

    def create(self, resource: Resource, namespace: str, body: dict) -> tuple[dict, bool]:
        """(the object, whether this call created it): an object of that name already there is returned as it is."""
        from kubernetes.client.exceptions import ApiException

        name = body["metadata"]["name"]
        try:
            created = self._custom.create_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural, body
            )
            return created, True
        except ApiException as e:
            if e.status != 409:
                raise KubeError(
                    f"create {resource.kind} {namespace}/{name}: {e.status} {e.reason}: {_message(e.body)}"
                ) from None
        existing = self.get(resource, namespace, name)
        if existing is None:
            raise KubeError(
                f"create {resource.kind} {namespace}/{name}: it exists, then it did not (deleted meanwhile)"
            )
        return existing, False

    def json_patch(self, resource: Resource, namespace: str, name: str, operations: list[dict]) -> dict:
        """An RFC 6902 patch; its `test` operations make it fail, changing nothing, if the object moved meanwhile."""
        # CustomObjectsApi.patch_* always sends merge-patch+json, which replaces lists whole: call the path directly.
        return self._call(
            f"patch {resource.kind} {namespace}/{name}",
            self._custom.api_client.call_api,
            f"/apis/{resource.group}/{resource.version}/namespaces/{namespace}/{resource.plural}/{name}",
            "PATCH",
            header_params={"Content-Type": "application/json-patch+json", "Accept": "application/json"},
            body=operations,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )


def _message(body) -> str:
    import json

    try:
        return json.loads(body).get("message", body)
    except (TypeError, ValueError, AttributeError):
        return str(body)
