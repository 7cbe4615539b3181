"""One module per target; each holds its config block and provisions what differs on that target.

Nothing outside this package imports a cloud SDK.
"""

from infra.clouds.aws import AwsConfig
from infra.clouds.azure import AzureConfig
from infra.clouds.existing import ExistingConfig
from infra.clouds.gcp import GcpConfig
from infra.clouds.kind import KindConfig

# Stack-config `target` value -> that target's config block (the stack key of the same name).
TARGETS = {
    "aws": AwsConfig,
    "gcp": GcpConfig,
    "azure": AzureConfig,
    "kind": KindConfig,
    "existing": ExistingConfig,
}

__all__ = ["TARGETS", "AwsConfig", "AzureConfig", "ExistingConfig", "GcpConfig", "KindConfig"]
