"""This machine, for the kit's own local runs (testinfra's local backend); not applicable to a remote cluster."""

from __future__ import annotations

import json

import pytest

from infra.verify.host import cluster_processes, kit_processes, listeners, recorded_pids, secret_files


@pytest.fixture(scope="session")
def cluster_dir(deployment):
    if deployment.local_cluster is None:
        pytest.skip("the cluster is not the kit's local control plane (`make cluster`)")
    return deployment.local_cluster


def test_kit_listeners_bind_loopback_only(cluster_dir, local_host, record):
    """Every socket the kit's processes listen on (the local control plane, `make demo`'s servers) is on loopback."""
    kit = kit_processes(local_host, cluster_dir)
    held = [s for s in listeners(local_host) if s.pids & set(kit)]
    open_to_network = [f"{s} ({kit[min(s.pids & set(kit))].split()[0]})" for s in held if not s.loopback]
    assert not open_to_network, f"bound beyond loopback: {', '.join(open_to_network)}"
    api_port = json.loads((cluster_dir / "ports.json").read_text())["apiserver"]
    assert any(s.port == api_port for s in held), f"the API server's port {api_port} is not among the kit's listeners"
    record(f"{len(held)} listeners of {len({p for s in held for p in s.pids})} kit processes, all on loopback")


def test_keys_and_kubeconfig_are_private(cluster_dir, local_host, record):
    """The generated private keys and the admin kubeconfig are mode 0600, owned by the user who started the cluster."""
    files = secret_files(cluster_dir)
    owner = local_host.file(str(cluster_dir)).user
    loose = [
        f"{f.name} {local_host.file(str(f)).mode:o}"
        for f in files
        if local_host.file(str(f)).mode != 0o600 or local_host.file(str(f)).user != owner
    ]
    assert len(files) > 1, f"no keys under {cluster_dir / 'pki'}"
    assert not loose, f"not 0600 or not {owner}'s: {', '.join(loose)}"
    record(f"{', '.join(f.name for f in files)}: 0600")


def test_every_cluster_process_is_stopped_by_its_stop_command(cluster_dir, local_host, record):
    """Every process running for the local cluster is one its stop command kills (a PID file in pids/), and alive."""
    recorded = recorded_pids(cluster_dir)
    running = cluster_processes(local_host, cluster_dir)
    untracked = {pid: args.split()[0] for pid, args in running.items() if pid not in recorded.values()}
    assert not untracked, f"running for the cluster but in no PID file (would outlive the stop command): {untracked}"
    dead = [name for name, pid in recorded.items() if pid not in running]
    assert not dead, f"PID files of processes no longer running: {', '.join(dead)}"
    record(f"{len(recorded)} processes, each in a PID file: {', '.join(recorded)}")
