"""A live Kubernetes control plane on this machine, with the stack's node pools simulated by kwok.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes on
127.0.0.1 (binaries from ``scripts/cluster-tools.sh cluster``); kwok plays every node of every pool
in the stack's ``nodePools``, with the pool's labels and taints and its GPUs as ``nvidia.com/gpu``
capacity. Everything the API server decides is real (schemas, admission, quotas, RBAC,
scheduling by labels, taints and GPU counts, garbage collection); no container ever runs, so pods
are reported Running and Ready by kwok. No Docker, no cloud: a way to try ``pulumi up`` of the
platform, and what the kit's live tests deploy onto.

    python -m mlkit_dev.simcluster up sim      # start it for stacks/Pulumi.sim.yaml (make cluster)
    python -m mlkit_dev.simcluster down        # stop every process by PID and delete its files
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
import yaml

from infra.config import NodePool
from infra.stack import REPO_ROOT, StackConfigError, load_stack_file
from infra.target import pool_labels, pool_taints

BIN = REPO_ROOT / ".cache" / "bin"
STAGES = REPO_ROOT / ".cache" / "kwok-stages"
DEFAULT_DIR = REPO_ROOT / ".cache" / "cluster"
CONTEXT = "mlkit-sim"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
# Each simulated node's allocatable CPU, memory and local disk (a kubelet reports its root disk as
# ephemeral-storage; pods that request some are unschedulable on a node without): room for the whole platform.
NODE_CPU, NODE_MEMORY, NODE_DISK, NODE_PODS = "32", "128Gi", "200Gi", "110"
KWOK_NODE = {"kwok.x-k8s.io/node": "fake"}


class ClusterError(Exception):
    """The simulated cluster could not start or stop; the message says why and what to do."""


@dataclass(frozen=True)
class SimCluster:
    """One simulated cluster, whose files, logs and PIDs live in ``directory``."""

    directory: Path = DEFAULT_DIR
    bin_dir: Path = BIN

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    # --- lifecycle ------------------------------------------------------------------------

    def up(self, node_pools: list[NodePool], timeout: float = 90) -> None:
        """Start the control plane and kwok, create one node per pool node; wait until they are Ready."""
        missing = [b for b in BINARIES if not (self.bin_dir / b).is_file()]
        if missing:
            raise ClusterError(
                f"missing {', '.join(missing)} in {self.bin_dir}: build them with `scripts/cluster-tools.sh cluster` "
                "(about 30 minutes the first time, cached after)"
            )
        if not shutil.which("openssl"):
            raise ClusterError("`openssl` is not on PATH; install it (Debian: apt-get install openssl)")
        if self.running():
            raise ClusterError(f"a cluster already runs from {self.directory}; stop it with `make cluster-down`")
        self.down()  # leftovers of a crashed run
        for sub in ("pki", "logs", "pids", "etcd"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        ports = {name: _free_port() for name in ("etcd", "etcd-peer", "apiserver")}
        (self.directory / "ports.json").write_text(json.dumps(ports))
        self._certificates()
        self._write_kubeconfig(ports["apiserver"])
        try:
            self._start_control_plane(ports, timeout)
            self._kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(self._cluster_objects(node_pools)))
            self._wait_nodes_ready(sum(p.max_size for p in node_pools), timeout)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop every process this cluster started (by PID, newest first) and delete its files."""
        pid_dir = self.directory / "pids"
        if pid_dir.is_dir():
            for name in reversed(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]):
                _stop(pid_dir / f"{name}.pid")
        shutil.rmtree(self.directory, ignore_errors=True)

    def running(self) -> bool:
        pid_file = self.directory / "pids" / "kube-apiserver.pid"
        return pid_file.is_file() and _alive(int(pid_file.read_text()))

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self._kubectl(*args, stdin=stdin, check=check)

    # --- internals ------------------------------------------------------------------------

    def _start_control_plane(self, ports: dict[str, int], timeout: float) -> None:
        pki, admin = self.directory / "pki", str(self.kubeconfig)
        etcd = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._spawn(
            "etcd",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={etcd}",
            f"--advertise-client-urls={etcd}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--quota-backend-bytes=4294967296",
            # A throwaway cluster: no fsync per write, so a slow or busy disk does not slow every API call.
            "--unsafe-no-fsync",
        )
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # No kubelet holds the endpoints of the API server's own Service on loopback.
            "--endpoint-reconciler-type=none",
            "--service-cluster-ip-range=10.96.0.0/16",
        )
        self._wait_ready(ports["apiserver"], timeout)
        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={admin}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--flex-volume-plugin-dir={self.directory / 'flex'}",  # its default is under /usr/libexec
        )
        self._spawn("kube-scheduler", f"--kubeconfig={admin}", "--leader-elect=false", "--secure-port=0")
        stages = sorted(STAGES.glob("*.yaml"))
        if not stages:
            raise ClusterError(f"no kwok stages in {STAGES}: run `scripts/cluster-tools.sh cluster`")
        self._spawn(
            "kwok",
            f"--kubeconfig={admin}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",  # kwok renews node leases: nodes stay Ready
            *(f"--config={s}" for s in stages if s.name != "storage-class.yaml"),
        )

    def _cluster_objects(self, node_pools: list[NodePool]) -> list[dict]:
        """kwok's simulated volume provisioner's StorageClass, and one Node per node of each pool."""
        objects = [yaml.safe_load((STAGES / "storage-class.yaml").read_text())]
        for pool in node_pools:
            for i in range(pool.max_size):
                name = f"{pool.name}-{i}"
                capacity = {"cpu": NODE_CPU, "memory": NODE_MEMORY, "ephemeral-storage": NODE_DISK, "pods": NODE_PODS}
                if pool.gpu:
                    capacity["nvidia.com/gpu"] = str(pool.gpu.count)
                objects.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": name,
                            "annotations": {**KWOK_NODE, "node.alpha.kubernetes.io/ttl": "0"},
                            "labels": {
                                **pool_labels(pool),
                                "type": "kwok",
                                "kubernetes.io/hostname": name,
                                "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64",
                            },
                        },
                        "spec": {"taints": [t.model_dump() for t in pool_taints(pool)]},
                        "status": {"capacity": capacity, "allocatable": capacity},
                    }
                )
        return objects

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        process = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `make cluster`; stopped by PID
        )
        (self.directory / "pids" / f"{name}.pid").write_text(str(process.pid))
        time.sleep(0.2)
        if process.poll() is not None:
            raise ClusterError(f"{name} exited at start ({process.returncode}); see {self.logs / f'{name}.log'}")

    def _wait_ready(self, port: int, timeout: float) -> None:
        pki = self.directory / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            for name in ("etcd", "kube-apiserver"):
                if not _alive(int((self.directory / "pids" / f"{name}.pid").read_text())):
                    raise ClusterError(f"{name} stopped while starting; see {self.logs / f'{name}.log'}")
            time.sleep(0.5)
        raise ClusterError(f"the API server was not ready within {timeout:.0f} s; see {self.logs}")

    def _wait_nodes_ready(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            nodes = json.loads(self._kubectl("get", "nodes", "-o", "json").stdout)["items"]
            ready = sum(
                any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
                for n in nodes
            )
            if ready >= count:
                return
            time.sleep(0.5)
        raise ClusterError(f"{ready} of {count} simulated nodes Ready after {timeout:.0f} s; see {self.logs}/kwok.log")

    def _kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
        )
        if check and result.returncode:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def _certificates(self) -> None:
        """A CA, the API server's serving certificate, an admin client certificate and the service-account keys."""
        pki = self.directory / "pki"

        def openssl(*args: str) -> None:
            result = subprocess.run(["openssl", *args], cwd=pki, capture_output=True, text=True)
            if result.returncode:
                raise ClusterError(f"openssl {args[0]}: {result.stderr.strip()}")

        key = ("-newkey", "rsa:2048", "-nodes", "-days", "365")
        openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=mlkit-sim-ca")
        names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        sans = ",".join(["IP:127.0.0.1", "IP:10.96.0.1", "DNS:localhost", *(f"DNS:{n}" for n in names)])
        (pki / "apiserver.ext").write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
        (pki / "admin.ext").write_text("extendedKeyUsage=clientAuth\n")
        for name, subject in (("apiserver", "/CN=kube-apiserver"), ("admin", "/O=system:masters/CN=mlkit-admin")):
            openssl("req", *key[:3], "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
            openssl(
                "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "365", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
            )  # fmt: skip
        openssl("genrsa", "-out", "sa.key", "2048")
        openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")

    def _write_kubeconfig(self, port: int) -> None:
        pki = self.directory / "pki"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT,
                    "cluster": {"server": f"https://127.0.0.1:{port}", "certificate-authority": str(pki / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "mlkit-admin",
                    "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
                }
            ],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "mlkit-admin"}}],
            "current-context": CONTEXT,
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pid_file: Path, grace: float = 10) -> None:
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)  # each process leads its own session and group
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


# --- command line ---------------------------------------------------------------------------

app = typer.Typer(help=(__doc__ or "").split("\n\n")[0], no_args_is_help=True, add_completion=False)
DirOpt = Annotated[Path, typer.Option("--dir", help="where the cluster keeps its files")]


@app.command()
def up(
    stack: Annotated[str, typer.Argument(help="the stack whose nodePools become nodes")] = "sim",
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Start the control plane and simulated nodes; print the kubeconfig to use."""
    try:
        config = load_stack_file(stack)
        cluster = SimCluster(directory)
        cluster.up(config.node_pools)
    except (StackConfigError, ClusterError) as e:
        typer.echo(f"mlkit cluster: {e}", err=True)
        raise typer.Exit(1) from None
    nodes = cluster.kubectl("get", "nodes", "-L", "mlkit.io/pool,mlkit.io/gpu").stdout
    typer.echo(f"{nodes}\nready: export KUBECONFIG={cluster.kubeconfig}  (context {CONTEXT}); stop: make cluster-down")


@app.command()
def down(directory: DirOpt = DEFAULT_DIR) -> None:
    """Stop the cluster's processes and delete its files."""
    SimCluster(directory).down()


if __name__ == "__main__":
    app()
