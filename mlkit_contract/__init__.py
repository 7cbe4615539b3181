"""What the platform publishes to a team and its workloads read: pure pydantic and the standard library.

Infra writes these objects and charts and workloads read them; nothing here imports infra or workloads,
so either side may import it without pulling in the other.
"""

from mlkit_contract.profile import (
    CREDENTIALS_SECRET,
    PROFILE_CONFIGMAP,
    PROFILE_KEY,
    PROFILE_MOUNT,
    TeamProfile,
)

__all__ = ["CREDENTIALS_SECRET", "PROFILE_CONFIGMAP", "PROFILE_KEY", "PROFILE_MOUNT", "TeamProfile"]
