"""One module per target; each holds its config block and provisions what differs on that target.

Each module registers its plug-in on import (infra/clouds/registry.py). Nothing outside this
package imports a cloud SDK.
"""

from infra.clouds import aws, azure, existing, gcp, kind  # noqa: F401 - registers the built-in targets
from infra.clouds.registry import TARGETS, TargetPlugin, plugin_of, register

__all__ = ["TARGETS", "TargetPlugin", "plugin_of", "register"]
