"""The kit's policy pack: what `make policy` checks in every resource a stack would create (docs/security.md).

Each policy names the resource and the fix. Levels are mandatory unless the stack's `mlkit:policy.levels` says
otherwise; `mlkit policy-config <stack>` turns that block, and the stack facts some policies need (GPU pools
allowed to stay warm and why, whether the target is given store keys, the Seldon licence), into the file
`pulumi preview --policy-pack-config` reads. policy/__main__.py serves the pack to the Pulumi CLI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

if TYPE_CHECKING:
    from infra.stack import StackConfig

PART_OF = ("app.kubernetes.io/part-of", "mlkit")
GPU_NODE_LABEL = "mlkit.io/gpu"
POOL_LABEL = "mlkit.io/pool"
# Environment variables and Secret keys that hold a cloud credential itself (not a pointer to an identity).
STATIC_KEY_NAMES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_CREDENTIALS",
}
WORKLOADS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
RELEASE = "kubernetes:helm.sh/v3:Release"


def _get(props: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(props, Mapping):
            return None
        props = props.get(key)
    return props


def kit_written(props: Mapping[str, Any]) -> bool:
    """Objects the kit writes itself carry its part-of label; third-party manifests (KFP's) do not."""
    return (_get(props, "metadata", "labels") or {}).get(PART_OF[0]) == PART_OF[1]


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = WORKLOADS.get(resource_type)
    return _get(props, *path) if path else None


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def _describe(args: ResourceValidationArgs) -> str:
    namespace = _get(args.props, "metadata", "namespace")
    name = _get(args.props, "metadata", "name") or args.name
    return f"{args.resource_type.split(':')[-1]} {namespace + '/' if namespace else ''}{name}"


# --- object store -------------------------------------------------------------------------------


def _depends_on(resource: PolicyResource, prop: str, target: PolicyResource) -> bool:
    return any(d.urn == target.urn for d in resource.property_dependencies.get(prop, []))


def _tls_only(policy: Any) -> bool:
    """An S3 bucket policy that denies every request not made over TLS."""
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return False
    statements = _get(policy, "Statement") or []
    return any(
        s.get("Effect") == "Deny" and str(_get(s, "Condition", "Bool", "aws:SecureTransport")).lower() == "false"
        for s in statements
        if isinstance(s, Mapping)
    )


def validate_buckets(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every platform bucket is encrypted with the platform's key, never public, and TLS-only."""
    resources = args.resources
    for bucket in (r for r in resources if r.resource_type == "aws:s3/bucket:Bucket"):
        attached = {
            r.resource_type.split("/")[-1].split(":")[-1]: r
            for r in resources
            if r.resource_type.startswith("aws:s3/") and _depends_on(r, "bucket", bucket)
        }
        where = f"S3 bucket {bucket.name}"
        if "BucketServerSideEncryptionConfiguration" not in attached:
            report(
                f"{where} has no server-side encryption configuration: set mlkit:storage.encryption: true", bucket.urn
            )
        block = attached.get("BucketPublicAccessBlock")
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        if block is None or not all(block.props.get(f) is True for f in flags):
            report(f"{where} may become public: set mlkit:storage.blockPublicAccess: true", bucket.urn)
        policy = attached.get("BucketPolicy")
        if policy is not None and "policy" in policy.props and not _tls_only(policy.props["policy"]):
            report(f"{where}: its bucket policy does not deny requests without TLS (aws:SecureTransport)", bucket.urn)
        if policy is None:
            report(f"{where} has no bucket policy denying requests without TLS (aws:SecureTransport)", bucket.urn)
    for bucket in (r for r in resources if r.resource_type == "gcp:storage/bucket:Bucket"):
        # GCS encrypts every object and serves HTTPS only; public access is what a stack can get wrong.
        if bucket.props.get("publicAccessPrevention") != "enforced" or not bucket.props.get("uniformBucketLevelAccess"):
            report(
                f"GCS bucket {bucket.name} may become public: set mlkit:storage.blockPublicAccess: true "
                "(publicAccessPrevention enforced, uniform bucket-level access)",
                bucket.urn,
            )
    for account in (r for r in resources if r.resource_type == "azure-native:storage:StorageAccount"):
        props, where = account.props, f"storage account {account.name}"
        if props.get("allowBlobPublicAccess") is not False:
            report(f"{where} allows public blobs: set mlkit:storage.blockPublicAccess: true", account.urn)
        if props.get("enableHttpsTrafficOnly") is not True or props.get("minimumTlsVersion") != "TLS1_2":
            report(f"{where} accepts requests without TLS 1.2: enableHttpsTrafficOnly and TLS1_2", account.urn)


# --- node pools -----------------------------------------------------------------------------------


def _pool(resource_type: str, props: Mapping[str, Any]) -> tuple[Mapping[str, Any], float | None] | None:
    """A cloud node pool's node labels and minimum size, for the pool types the kit creates."""
    if resource_type == "aws:eks/nodeGroup:NodeGroup":
        return props.get("labels") or {}, _get(props, "scalingConfig", "minSize")
    if resource_type == "gcp:container/nodePool:NodePool":
        return _get(props, "nodeConfig", "labels") or {}, _get(props, "autoscaling", "totalMinNodeCount")
    if resource_type == "azure-native:containerservice:AgentPool":
        return props.get("nodeLabels") or {}, props.get("minCount")
    return None


def validate_gpu_pools(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A GPU pool scales to zero when idle, unless the stack says why one must stay warm."""
    pool = _pool(args.resource_type, args.props)
    if pool is None or GPU_NODE_LABEL not in pool[0]:
        return
    labels, min_size = pool
    name = labels.get(POOL_LABEL, args.name)
    reasons = (args.get_config() or {}).get("minSizeReasons") or {}
    # Numbers reach a pack as JSON numbers: floats.
    if isinstance(min_size, (int, float)) and min_size > 0 and not reasons.get(name):
        report(
            f"GPU pool {name} keeps {int(min_size)} node(s) running when idle: set its minSize: 0, "
            f"or say why it stays warm in mlkit:nodePools[{name}].minSizeReason",
            None,
        )


# --- workloads ------------------------------------------------------------------------------------


def validate_static_keys(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """No cloud credential in a workload's environment or a Secret, except the store keys a target is given."""
    allowed = bool((args.get_config() or {}).get("storeKeysAllowed"))
    if args.resource_type == "kubernetes:core/v1:Secret":
        held = STATIC_KEY_NAMES & {*(args.props.get("data") or {}), *(args.props.get("stringData") or {})}
        if held and not allowed:
            report(
                f"{_describe(args)} holds {', '.join(sorted(held))}: on this target workloads authenticate with "
                "their workload identity; remove the keys",
                None,
            )
        return
    spec = pod_spec(args.resource_type, args.props)
    for container in containers(spec or {}):
        for env in container.get("env") or []:
            if env.get("name") in STATIC_KEY_NAMES and env.get("value") is not None:
                report(
                    f"{_describe(args)}: container {container.get('name')} has {env['name']} written in its "
                    "environment: bind the workload identity instead, or read store keys from a Secret",
                    None,
                )


def validate_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Every workload the kit writes runs non-root on a read-only root filesystem, without privilege
    escalation, with CPU and memory requests and a memory limit (CPU limits only throttle; docs/security.md)."""
    spec = pod_spec(args.resource_type, args.props)
    if spec is None or not kit_written(args.props):
        return
    pod_non_root = _get(spec, "securityContext", "runAsNonRoot") is True
    for container in containers(spec):
        problems = []
        context = container.get("securityContext") or {}
        if not (pod_non_root or context.get("runAsNonRoot") is True):
            problems.append("runAsNonRoot: true")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem: true")
        if context.get("allowPrivilegeEscalation") is not False or context.get("privileged") is True:
            problems.append("allowPrivilegeEscalation: false")
        requests, limits = _get(container, "resources", "requests") or {}, _get(container, "resources", "limits") or {}
        if not {"cpu", "memory"} <= set(requests):
            problems.append("resources.requests cpu and memory")
        if "memory" not in limits:
            problems.append("resources.limits.memory")
        if problems:
            report(f"{_describe(args)}: container {container.get('name')} needs {', '.join(problems)}", None)


def _images(value: Any) -> Iterator[str]:
    """Every image a workload or a chart's values name: `image: repo:tag` strings and {repository, tag} maps."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "image" and isinstance(item, str):
                yield item
            elif isinstance(item, Mapping) and "repository" in item and "tag" in item:
                yield f"{item['repository']}:{item['tag']}"
            else:
                yield from _images(item)
    elif isinstance(value, list):
        for item in value:
            yield from _images(item)


def _floating(image: str) -> bool:
    if "@sha256:" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest") or last.endswith(":")


def validate_image_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Images are pinned: no `:latest` and no untagged image, in workloads and in chart values."""
    if args.resource_type in WORKLOADS:
        found = _images({"c": list(containers(pod_spec(args.resource_type, args.props) or {}))})
    elif args.resource_type == RELEASE:
        found = _images(args.props.get("values") or {})
    else:
        return
    for image in sorted({i for i in found if _floating(i)}):
        report(
            f"{_describe(args)} runs {image}: pin a version tag or digest (mlkit:images.tag for the kit's own)", None
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def validate_seldon_licence(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Seldon Core after 1.17.1 is under the Business Source License 1.1: only with the stack's licence flag."""
    if args.resource_type != RELEASE or args.props.get("chart") != "seldon-core-operator":
        return
    version = str(args.props.get("version") or "")
    if _version(version) >= (1, 18) and (args.get_config() or {}).get("acceptLicense") != "BSL-1.1":
        report(
            f"Seldon Core {version} is licensed under the Business Source License 1.1: set "
            "mlkit:platform.seldonCore.acceptLicense: BSL-1.1 to accept it, or keep version 1.17.1",
            None,
        )


def _resource(name: str, description: str, validate: Callable, schema: dict | None = None):
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        config_schema=PolicyConfigSchema(properties=schema) if schema else None,
    )


def policies() -> list:
    return [
        StackValidationPolicy(
            name="object-store-private-encrypted-tls",
            description="Platform buckets are encrypted, never public, and refuse requests without TLS.",
            validate=validate_buckets,
        ),
        _resource(
            "gpu-pools-scale-to-zero",
            "GPU node pools have minSize 0 unless the stack gives a minSizeReason.",
            validate_gpu_pools,
            {"minSizeReasons": {"type": "object", "additionalProperties": {"type": "string"}}},
        ),
        _resource(
            "no-static-cloud-keys",
            "Workloads use their workload identity; only a target given store keys keeps them, in Secrets.",
            validate_static_keys,
            {"storeKeysAllowed": {"type": "boolean"}},
        ),
        _resource(
            "kit-workloads-hardened",
            "Kit workloads: non-root, read-only root filesystem, no privilege escalation, requests and limits.",
            validate_hardened,
        ),
        _resource("no-floating-image-tags", "No `:latest` or untagged images.", validate_image_tags),
        _resource(
            "seldon-core-licence",
            "No Seldon Core 1.18 or later without the stack accepting BSL-1.1.",
            validate_seldon_licence,
            {"acceptLicense": {"type": "string"}},
        ),
    ]


def pack_config(config: StackConfig) -> dict[str, dict[str, Any]]:
    """What `pulumi preview --policy-pack-config` reads for one stack: each policy's level and the facts it needs."""
    facts: dict[str, dict[str, Any]] = {
        "gpu-pools-scale-to-zero": {
            "minSizeReasons": {p.name: p.min_size_reason for p in config.node_pools if p.min_size_reason}
        },
        "no-static-cloud-keys": {"storeKeysAllowed": config.target.store_keys},
        "seldon-core-licence": {"acceptLicense": config.platform.seldon_core.accept_license or ""},
    }
    return {
        policy.name: {
            "enforcementLevel": config.policy.levels.get(policy.name, "mandatory"),
            **facts.get(policy.name, {}),
        }
        for policy in policies()
    }
