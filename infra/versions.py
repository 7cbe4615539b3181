"""Every pinned version the kit deploys by default, in one place.

Stack config may override a component's version; the default always comes from here.
Bump a version here, never inline in a component.
"""

KUBERNETES = "1.34"

# Platform components (Helm chart versions unless noted).
NVIDIA_DEVICE_PLUGIN = "0.17.4"
SPARK_OPERATOR = "2.3.0"
KUBEFLOW_PIPELINES = "2.17.0"  # upstream kustomize manifests, git tag; SeaweedFS object store (no MinIO)
SELDON_CORE = "1.17.1"  # last Apache-2.0 release; newer ones are BSL 1.1
MLFLOW = "3.17.0"  # server image tag
KUBE_PROMETHEUS_STACK = "79.5.0"

# Images the platform runs (tags, pinned). The kit's own images (workloads/*/Dockerfile) are built
# and pushed by `make images REGISTRY=...` to the registry in the stack's `mlkit:images`.
KIT_IMAGE_TAG = "0.1.0"  # the kit release the images are built from
# The user the kit's images run as (USER in workloads/{serving,training,mlflow}/Dockerfile), and the runAsUser and
# runAsGroup of the kit's pods (charts/, infra/components/): above 10000, clear of the users a node's host defines.
KIT_IMAGE_USER = 10001
MLFLOW_IMAGE = "mlkit-mlflow"  # workloads/mlflow/Dockerfile
POSTGRES_IMAGE = "postgres:17.6"
PUSHGATEWAY_IMAGE = "prom/pushgateway:v1.11.4"  # the batch jobs' metrics (infra/components/monitoring.py)

# Where each chart comes from.
CHART_REPOS = {
    "nvidia-device-plugin": "https://nvidia.github.io/k8s-device-plugin",
    "spark-operator": "https://kubeflow.github.io/spark-operator",
    "seldon-core-operator": "https://storage.googleapis.com/seldon-charts",
    "kube-prometheus-stack": "https://prometheus-community.github.io/helm-charts",
    "cluster-autoscaler": "https://kubernetes.github.io/autoscaler",
    "seaweedfs": "https://seaweedfs.github.io/seaweedfs/helm",
}
KFP_MANIFESTS = "https://github.com/kubeflow/pipelines/manifests/kustomize/{path}?ref={version}"
KFP_PATHS = ("cluster-scoped-resources", "env/platform-agnostic")

# Target-specific add-ons.
CLUSTER_AUTOSCALER_CHART = "9.50.1"  # kubernetes/autoscaler chart, AWS
# cluster-autoscaler supports only the Kubernetes minor it was built for: its image tag per cluster minor.
CLUSTER_AUTOSCALER_IMAGES = {
    "1.30": "v1.30.0",
    "1.31": "v1.31.0",
    "1.32": "v1.32.0",
    "1.33": "v1.33.0",
    "1.34": "v1.34.0",
}
SEAWEEDFS_CHART = "4.0.401"  # seaweedfs/seaweedfs chart, the kind target's object store

# The last Seldon Core v1 release under Apache-2.0; anything newer needs the licence flag.
SELDON_CORE_LAST_APACHE = "1.17.1"
