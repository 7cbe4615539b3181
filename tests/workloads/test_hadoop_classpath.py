"""The feature job's Hadoop classpath (.cache/spark/jars, the image's /opt/spark/jars) serves what the targets
configure: Hadoop 3.4 in place of Spark's 3.3.4, every Hadoop class a cloud module names, and ABFS's
workload-identity exchange with exactly the settings the AKS profile carries.

Each check runs a Java source file in its own JVM (tests/workloads/java/HadoopCheck.java), so the environment a
pod would get (the Azure workload-identity webhook's variables) is set per check.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from workloads.common.spark import LOCAL_SPARK_HOME

REPO = Path(__file__).resolve().parents[2]
CHECK = Path(__file__).resolve().parent / "java" / "HadoopCheck.java"
JARS = LOCAL_SPARK_HOME / "jars"
# Where the targets' Hadoop settings are written: the cloud modules (the profile) and the storage layer (local).
CONFIGURING = [*sorted((REPO / "infra" / "clouds").glob("*.py")), REPO / "workloads" / "common" / "storage.py"]
JAVA_CLASS = re.compile(r"^(org\.apache\.hadoop|software\.amazon|com\.amazonaws|com\.google\.cloud\.hadoop)(\.\w+)+$")


def hadoop_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["java", "-cp", f"{JARS}/*", str(CHECK), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def pom_hadoop_version() -> str:
    pom = ET.parse(REPO / "requirements" / "jars" / "pom.xml")
    return pom.find(
        "{http://maven.apache.org/POM/4.0.0}properties/{http://maven.apache.org/POM/4.0.0}hadoop.version"
    ).text


def configured_classes() -> set[str]:
    """Every string constant in the configuring modules that names a Hadoop or SDK class."""
    found = set()
    for module in CONFIGURING:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and JAVA_CLASS.match(node.value):
                found.add(node.value)
    return found


def abfs_profile_conf() -> dict[str, str]:
    """What infra/clouds/common.py's abfs_conf() returns (a literal dict: read without importing Pulumi)."""
    tree = ast.parse((REPO / "infra" / "clouds" / "common.py").read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "abfs_conf")
    returned = next(n for n in ast.walk(function) if isinstance(n, ast.Return))
    return ast.literal_eval(returned.value)


def test_the_classpath_runs_the_poms_hadoop_not_sparks():
    replaced = [
        line
        for line in (REPO / "requirements/jars/replaces-spark.txt").read_text().splitlines()
        if line and line[0] != "#"
    ]
    present = {jar.name for jar in JARS.glob("*.jar")}
    assert replaced and not set(replaced) & present, f"Spark's own Hadoop jars are still in {JARS}"
    result = hadoop_check("version")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == pom_hadoop_version() and pom_hadoop_version().startswith("3.4.")


def test_every_hadoop_class_a_target_configures_loads():
    names = configured_classes()
    # The search is not blind: each target's credentials or token provider is among what it finds.
    assert {
        "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider",
        "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider",
        "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
        "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
    } <= names
    result = hadoop_check("classes", *sorted(names))
    assert result.returncode == 0, f"a configured class is not on the classpath: {result.stderr[-3000:]}"
    assert sorted(result.stdout.split()[1::2]) == sorted(names)


class TokenAuthority(BaseHTTPRequestHandler):
    """Entra ID's token endpoint, as far as the exchange goes: records each request, answers one token."""

    requests: ClassVar[list[tuple[str, dict[str, list[str]]]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.requests.append((self.path, urllib.parse.parse_qs(body)))
        answer = json.dumps({"token_type": "Bearer", "expires_in": 3599, "access_token": "entra-access-token"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def authority():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenAuthority)
    TokenAuthority.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", TokenAuthority.requests
    server.shutdown()


def test_abfs_exchanges_the_pods_federated_token_with_the_aks_profiles_settings(authority, tmp_path):
    url, requests = authority
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("federated-service-account-jwt")
    # What the workload-identity webhook injects into a pod whose service account the AKS target binds.
    pod_env = {
        "AZURE_TENANT_ID": "tenant-guid",
        "AZURE_CLIENT_ID": "client-guid",
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": url,
    }
    conf = [f"{key}={value}" for key, value in abfs_profile_conf().items()]
    result = hadoop_check("abfs-token", "account.dfs.core.windows.net", *conf, env=pod_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "provider org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider" in result.stdout
    assert "token entra-access-token" in result.stdout
    [(path, form)] = requests
    assert path == "/tenant-guid/oauth2/v2.0/token"
    assert form["client_id"] == ["client-guid"]
    assert form["client_assertion"] == ["federated-service-account-jwt"]
    assert form["scope"] == ["https://storage.azure.com/.default"]


def test_s3a_reads_keys_from_the_pods_environment_as_kind_and_existing_configure(s3_store):
    """kind and existing hand the pod its keys as environment variables (the binding's Secret)."""
    (s3_store.at("s3://mlkit-test/classpath-check") / "object.txt").write_bytes(b"x")
    conf = {
        **{k: v for k, v in s3_store.hadoop_conf("s3").items() if not k.startswith(("fs.s3a.access", "fs.s3a.secret"))},
        "fs.s3a.aws.credentials.provider": "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
    }
    keys = {"AWS_ACCESS_KEY_ID": s3_store.access_key_id, "AWS_SECRET_ACCESS_KEY": s3_store.secret_access_key}
    result = hadoop_check("ls", "s3a://mlkit-test/classpath-check/", *[f"{k}={v}" for k, v in conf.items()], env=keys)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "listed object.txt" in result.stdout
