"""What the kit's own local runs leave on this machine, seen through testinfra's local backend.

The live test control plane (`make cluster`) keeps its kubeconfig, keys (pki/) and one PID file per
process (pids/) in its folder; `make demo` starts its servers from the kit's environments (.venv/).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testinfra.host import Host

from infra.stack import REPO_ROOT

# ss -Hltnup: "tcp LISTEN 0 4096 127.0.0.1:2379 0.0.0.0:* users:(("etcd",pid=123,fd=8))"
SS_LINE = re.compile(r"^(?P<proto>\S+)\s+\S+\s+\d+\s+\d+\s+(?P<local>\S+)\s+\S+\s*(?P<users>.*)$")
PID = re.compile(r"pid=(\d+)")


@dataclass(frozen=True)
class Listener:
    proto: str
    address: str
    port: int
    pids: frozenset[int]

    @property
    def loopback(self) -> bool:
        host = self.address.strip("[]").split("%")[0]
        if host in ("*", ""):
            return False
        address = ipaddress.ip_address(host)
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback

    def __str__(self) -> str:
        return f"{self.proto} {self.address}:{self.port}"


def listeners(host: Host) -> list[Listener]:
    """Every listening TCP and bound UDP socket of this network namespace, with the PIDs holding it."""
    found = []
    for line in host.check_output("ss -Hltnup").splitlines():
        match = SS_LINE.match(line.strip())
        if not match:
            continue
        address, _, port = match["local"].rpartition(":")
        found.append(
            Listener(match["proto"], address, int(port), frozenset(int(p) for p in PID.findall(match["users"])))
        )
    return found


def cluster_processes(host: Host, directory: Path) -> dict[int, str]:
    """PID -> command line of every process running for the local cluster in ``directory`` (its flags name it).

    This process and its parents are left out: a `mlkit verify --kubeconfig <folder>/kubeconfig` names it too.
    """
    folder = str(directory.resolve())
    ours = ancestry(os.getpid())
    return {p.pid: p.args for p in processes(host) if folder in p.args and p.pid not in ours}


def ancestry(pid: int) -> set[int]:
    """``pid`` and every parent up to init (Linux /proc)."""
    chain = set()
    while pid > 1 and pid not in chain:
        chain.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rpartition(")")[2].split()[1])
    return chain


def kit_processes(host: Host, directory: Path | None = None) -> dict[int, str]:
    """PID -> command line of every process run from this checkout (.venv/, .cache/bin) or for the cluster."""
    marks = [str(REPO_ROOT / ".venv"), str(REPO_ROOT / ".cache"), *([str(directory.resolve())] if directory else [])]
    return {p.pid: p.args for p in processes(host) if any(mark in p.args for mark in marks)}


def processes(host: Host) -> list[Any]:
    """testinfra's process list (pid, args, ...) of the host."""
    return host.process.filter()  # pyright: ignore[reportAttributeAccessIssue] - testinfra's modules are dynamic


def recorded_pids(directory: Path) -> dict[str, int]:
    """The processes the cluster's stop command stops: its PID files."""
    return {f.stem: int(f.read_text()) for f in sorted((directory / "pids").glob("*.pid")) if f.read_text().strip()}


def secret_files(directory: Path) -> list[Path]:
    """The kubeconfig and every private key the local cluster generated."""
    return [directory / "kubeconfig", *sorted((directory / "pki").glob("*.key"))]
