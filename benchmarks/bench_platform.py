"""Wall time of the real `pulumi up` on the live simulated cluster: the whole platform, a no-change up,
destroy, and how up time grows with the number of teams (1, 10, 50; platform components off).

One sample each (an up of the whole platform is tens of seconds); the ratios compare runs of this same
benchmark on this same machine. kwok reports pods ready at once, so the times are Pulumi, the provider,
helm and the API server, not image pulls or container starts.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.stack import load_stack_file  # noqa: E402
from mlkit_dev.simcluster import SimCluster  # noqa: E402
from tests.live.harness import LiveStack  # noqa: E402

TEAM_COUNTS = (1, 10, 50)
COMPONENTS_OFF = {
    name: {"enabled": False}
    for name in ("gpuPlugin", "sparkOperator", "kubeflowPipelines", "seldonCore", "mlflow", "monitoring")
}


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return round(time.perf_counter() - started, 1)


def counted(stack: LiveStack) -> int:
    return sum(1 for r in stack.resources() if not r["type"].startswith("pulumi:"))


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = SimCluster(Path(tmp) / "cluster")
        cluster.up(load_stack_file("sim").node_pools)
        try:
            platform = LiveStack(cluster, Path(tmp) / "platform", name="platform")
            platform.init()
            first = timed(platform.up)
            resources = counted(platform)
            unchanged = timed(platform.up)
            destroy = timed(platform.destroy)

            teams = {}
            for count in TEAM_COUNTS:
                stack = LiveStack(cluster, Path(tmp) / f"teams-{count}", name=f"teams-{count}")
                stack.config["mlkit:platform"] = COMPONENTS_OFF
                stack.config["mlkit:teams"] = [
                    {"name": f"team-{i:02d}", "quotas": {"cpu": "4", "memory": "8Gi", "gpu": 0}} for i in range(count)
                ]
                stack.init(database_url=None)
                seconds = timed(stack.up)
                teams[count] = {"up_s": seconds, "resources": counted(stack)}
                stack.destroy()
        finally:
            cluster.down()
    per_team = round((teams[50]["up_s"] - teams[1]["up_s"]) / 49, 2)
    return {
        "platform": {"first_up_s": first, "no_change_up_s": unchanged, "destroy_s": destroy, "resources": resources},
        "no_change_up_vs_first_up": round(unchanged / first, 2),
        "teams_only_up": {str(k): v for k, v in teams.items()},
        "seconds_per_extra_team": per_team,
        "teams_50_vs_1": round(teams[50]["up_s"] / teams[1]["up_s"], 1),
    }
