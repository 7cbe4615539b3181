"""The kit's policy pack, as the Pulumi CLI runs it (`pulumi preview --policy-pack policy`).

The policies live in infra/policies.py, next to the config schema they read; this directory is what the
CLI loads, so the checkout's root goes on the import path first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.policies import policies

PolicyPack(name="mlkit-guardrails", policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
