import pytest

from infra.stack import load_stack_file
from mlkit_dev.simcluster import SimCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A live control plane with the sim stack's node pools simulated by kwok, for the whole session."""
    live = SimCluster(tmp_path_factory.mktemp("cluster"))
    live.up(load_stack_file("sim").node_pools)
    yield live
    live.down()
