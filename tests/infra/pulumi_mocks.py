"""Run Pulumi code under mocks and keep every resource it registers, with its resolved inputs."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import pulumi

from infra.clouds import plugin_of
from infra.program import cluster_args
from infra.stack import StackConfig, load_stack_file
from infra.target import ClusterTarget


@dataclass
class Recorded:
    type: str
    name: str
    inputs: dict

    def __repr__(self) -> str:
        return f"{self.type}::{self.name}"


# What the cloud computes on create, for the outputs the code reads back.
COMPUTED = {
    "aws:eks/cluster:Cluster": lambda name, inputs: {
        "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "certificateAuthority": {"data": "Y2E="},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.eu-west-1.amazonaws.com/id/{name.upper()}"}]}],
    },
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": lambda name, inputs: {
        "arn": f"arn:aws:iam::111122223333:oidc-provider/{inputs['url'].removeprefix('https://')}"
    },
    "aws:iam/role:Role": lambda name, inputs: {"arn": f"arn:aws:iam::111122223333:role/{name}", "name": name},
    "aws:kms/key:Key": lambda name, inputs: {"arn": f"arn:aws:kms:eu-west-1:111122223333:key/{name}"},
    "aws:s3/bucket:Bucket": lambda name, inputs: {
        "arn": f"arn:aws:s3:::{inputs.get('bucket', name)}",
        "bucket": inputs.get("bucket", name),
    },
    "gcp:container/cluster:Cluster": lambda name, inputs: {
        "endpoint": "203.0.113.10",
        "masterAuth": {"clusterCaCertificate": "Y2E="},
    },
    "gcp:serviceaccount/account:Account": lambda name, inputs: {
        "email": f"{inputs['accountId']}@acme-ml-platform.iam.gserviceaccount.com",
        "name": f"projects/acme-ml-platform/serviceAccounts/{inputs['accountId']}",
    },
    "gcp:storage/bucket:Bucket": lambda name, inputs: {"url": f"gs://{inputs['name']}"},
    "azure-native:containerservice:ManagedCluster": lambda name, inputs: {
        "oidcIssuerProfile": {"enabled": True, "issuerURL": "https://westeurope.oic.prod-aks.azure.com/tenant/guid/"}
    },
    "azure-native:managedidentity:UserAssignedIdentity": lambda name, inputs: {
        "name": name,
        "principalId": f"principal-{name}",
        "clientId": f"client-{name}",
    },
    "azure-native:storage:StorageAccount": lambda name, inputs: {"name": inputs.get("accountName", name)},
    "azure-native:storage:BlobContainer": lambda name, inputs: {"name": inputs.get("containerName", name)},
    "azure-native:resources:ResourceGroup": lambda name, inputs: {"name": inputs.get("resourceGroupName", name)},
    "random:index/randomString:RandomString": lambda name, inputs: {"result": f"AK{abs(hash(name)) % 10**18:018d}"},
    "random:index/randomPassword:RandomPassword": lambda name, inputs: {"result": f"secret-{name}"},
    "command:local:Command": lambda name, inputs: {
        "stdout": json.dumps({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []})
    },
}
# What AKS returns for a cluster with Entra ID: an exec user (replaced by the kit), the server and its CA.
AKS_KUBECONFIG = base64.b64encode(
    json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "mlkit-azure",
                    "cluster": {
                        "server": "https://mlkit-azure-abc123.hcp.westeurope.azmk8s.io:443",
                        "certificate-authority-data": "Y2E=",
                    },
                }
            ],
            "users": [{"name": "clusterUser", "user": {"exec": {"command": "kubelogin", "args": ["get-token"]}}}],
            "contexts": [{"name": "mlkit-azure", "context": {"cluster": "mlkit-azure", "user": "clusterUser"}}],
        }
    ).encode()
).decode()
CALLS = {
    "azure-native:containerservice:listManagedClusterUserCredentials": {
        "kubeconfigs": [{"name": "clusterUser", "value": AKS_KUBECONFIG}]
    },
    "azure-native:authorization:getClientConfig": {
        "subscriptionId": "00000000-0000-0000-0000-000000000001",
        "tenantId": "tenant",
        "clientId": "c",
        "objectId": "o",
    },
}


SECRET_SIG = "4dabf18193072939515e22adb298388d"


def unsecret(value):
    """Inputs with Pulumi's secret wrappers removed."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return unsecret(value.get("value"))
        return {k: unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsecret(v) for v in value]
    return value


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list[Recorded] = field(default_factory=list)
    depends_on: dict[str, set[str]] = field(default_factory=dict)  # resource name -> names it explicitly waits for
    options: dict[tuple[str, str], pulumi.ResourceOptions] = field(default_factory=dict)  # (type, name) -> options
    done: bool = False

    def transformation(self, args: pulumi.ResourceTransformationArgs):
        if self.done:  # stack transformations outlive their program run; a later run is not ours
            return None
        depends_on = args.opts.depends_on or []
        if isinstance(depends_on, pulumi.Resource):
            depends_on = [depends_on]
        self.depends_on[args.name] = {getattr(d, "_name", "?") for d in depends_on if isinstance(d, pulumi.Resource)}
        self.options[(args.type_, args.name)] = args.opts
        return None

    def waits_for(self, type_: str, name: str) -> set[str]:
        """Names of the resources one resource explicitly depends on."""
        depends_on = self.options[(type_, name)].depends_on or []
        if isinstance(depends_on, pulumi.Resource):
            depends_on = [depends_on]
        return {getattr(d, "_name", "?") for d in depends_on if isinstance(d, pulumi.Resource)}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = {**args.inputs, **COMPUTED.get(args.typ, lambda n, i: {})(args.name, args.inputs)}
        self.resources.append(Recorded(args.typ, args.name, outputs))
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return CALLS.get(args.token, {})

    def of_type(self, type_: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Recorded:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {found}"
        return found[0]


def provision(config: StackConfig, name: str, settings: dict | None = None) -> ClusterTarget:
    """The stack's target, provisioned as `pulumi up` provisions it (inside a mocked program)."""
    return plugin_of(config.target).provision(name, cluster_args(config, settings), None)


def deploy(stack: str | StackConfig, build) -> Recorder:
    """Run ``build(config)`` as a Pulumi program for ``stack`` under mocks; return what it created."""
    config = load_stack_file(stack) if isinstance(stack, str) else stack
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="mlkit", stack=stack if isinstance(stack, str) else "test", preview=False)

    @pulumi.runtime.test
    def program():
        pulumi.runtime.register_stack_transformation(mocks.transformation)
        build(config)

    program()
    mocks.done = True
    return mocks
