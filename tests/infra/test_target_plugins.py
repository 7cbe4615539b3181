"""A target is one plug-in: a sixth one, registered from this test, needs no edit anywhere in the kit."""

from __future__ import annotations

from typing import ClassVar, Literal

import pulumi
import pytest

from infra.clouds import TARGETS, TargetPlugin, register
from infra.components.platform import build_platform, charts_needed
from infra.config import TargetConfig
from infra.doctor import run_checks
from infra.stack import parse_stack
from infra.target import (
    Access,
    ClusterArgs,
    ClusterTarget,
    IdentityBinding,
    ObjectStore,
    gpu_scheduling,
    prefix_of,
)
from tests.infra.pulumi_mocks import deploy, provision


class LabConfig(TargetConfig):
    """A made-up on-prem lab: one kubeconfig context and an S3-compatible store."""

    type: Literal["lab"]
    provisions_nodes: ClassVar[bool] = False
    context: str
    endpoint: str


class LabCluster(pulumi.ComponentResource, ClusterTarget):
    def __init__(self, name: str, args: ClusterArgs[LabConfig], opts=None):
        super().__init__("test:lab:LabCluster", name, None, opts)
        import pulumi_kubernetes as k8s

        self.name, self.node_pools = name, args.node_pools
        self.provider = k8s.Provider(
            f"{name}-k8s", context=args.config.context, opts=pulumi.ResourceOptions(parent=self)
        )
        self.object_store = ObjectStore(scheme="s3", bucket=args.storage.bucket, endpoint=args.config.endpoint)
        self.gpu = gpu_scheduling(list(args.node_pools), device_plugin_managed=False)
        self.storage_class = "lab-nfs"
        self.register_outputs({})

    def bind(self, service_account: str, namespace: str, prefix: str, access: Access = "readwrite") -> IdentityBinding:
        return IdentityBinding(
            service_account, namespace, prefix_of(prefix), access, credentials={"AWS_ACCESS_KEY_ID": "lab"}
        )

    def hadoop_conf(self) -> dict[str, pulumi.Input[str]]:
        return {"fs.s3a.endpoint": self.object_store.endpoint or ""}


@pytest.fixture
def lab():
    plugin = register(
        TargetPlugin(
            config=LabConfig,
            provision=LabCluster,
            required_tools=("labctl",),
            charts={"lab-storage": "1.2.3"},
            credential_problem=lambda config, env, home: (
                None if env.get("LAB_TOKEN") else "no lab token: export LAB_TOKEN"
            ),
        )
    )
    yield plugin
    del TARGETS["lab"]


STACK = {
    "target": {"type": "lab", "context": "lab-1", "endpoint": "http://s3.lab.internal:9000"},
    "nodePools": [{"name": "cpu", "minSize": 2, "maxSize": 2}],
    "storage": {"bucket": "lab-bucket"},
    "teams": [{"name": "churn"}],
    "images": {"registry": "registry.lab.internal/mlkit"},
}


def test_a_sixth_target_validates_provisions_and_carries_the_platform(lab):
    config = parse_stack(STACK, "lab", decrypted=True)
    assert config.target.type == "lab" and config.target.context == "lab-1"
    # A wrong key inside its block is named like any other.
    bad = {**STACK, "target": {**STACK["target"], "contxt": "x"}}
    with pytest.raises(Exception, match=r"mlkit:target.contxt: unknown key \(did you mean 'context'\?\)"):
        parse_stack(bad, "lab", decrypted=True)

    def build(c):
        target = provision(c, "mlkit-lab")
        build_platform("mlkit-lab", c, target)
        target.complete()

    mocks = deploy(config, build)
    assert mocks.one("pulumi:providers:kubernetes").inputs["context"] == "lab-1"
    assert any(r.type == "kubernetes:helm.sh/v3:Release" for r in mocks.resources)
    assert mocks.of_type("kubernetes:core/v1:Secret")  # the binding's keys reach the team namespace
    assert charts_needed(config)["lab-storage"] == "1.2.3"
    checks = {c.name: c for c in run_checks(config, env={"PATH": "", "HOME": "/nonexistent"})}
    assert not checks["labctl"].ok and "labctl" in checks["labctl"].detail
    assert checks["lab access"].detail == "no lab token: export LAB_TOKEN"


def test_an_unregistered_type_is_refused_with_the_registered_ones(lab):
    with pytest.raises(Exception) as caught:
        parse_stack({**STACK, "target": {"type": "openstack"}}, "x", decrypted=True)
    assert "'openstack' is no target type; expected one of: aws, azure, existing, gcp, kind, lab" in str(caught.value)


def test_a_type_cannot_be_registered_twice(lab):
    with pytest.raises(ValueError, match="already registered"):
        register(TargetPlugin(config=LabConfig, provision=LabCluster))
