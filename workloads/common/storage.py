"""One storage layer for every store the platform hands out: a directory, s3://, gs://, abfss:// (or az://).

Workloads name places by URI and never care which cloud holds them. ``ObjectStore`` is how this
process reaches the platform's store (from the team profile, or the environment on a laptop);
``ObjectStore.at(uri)`` gives a ``StorePath`` (pyarrow.fs underneath) that reads, writes, lists and
copies directory trees. The same settings give Spark its Hadoop connector options (``hadoop_conf``)
and the Rust Hudi reader its ``object_store`` options (``reader_options``).

Credentials come from where each cloud's SDK looks by default (IRSA, GKE and AKS workload identity),
or from the standard variables: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (kind, on-prem),
AZURE_STORAGE_KEY. An ``endpoint`` names an S3-compatible store or an emulator (fake-gcs-server,
Azurite); GCS emulators take no credentials, so a GCS endpoint means anonymous access.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    import pyarrow.fs

    from mlkit_contract import TeamProfile

ACCEPTED = "a directory (or file://...), s3://<bucket>/..., gs://<bucket>/..., abfss://<container>@<account>.dfs.core.windows.net/... or az://<container>/..."
AZURE_DFS_HOST = ".dfs.core.windows.net"


class StorageError(ValueError):
    """A URI this layer cannot serve; the message names it and what is accepted."""


def scheme_of(uri: str) -> str:
    """'file' for a path or file:// URI, else the URI's scheme (s3a:// counts as s3://)."""
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        return "file"
    scheme = {"s3a": "s3", "abfs": "abfss"}.get(scheme, scheme)
    if scheme not in ("s3", "gs", "abfss", "az"):
        raise StorageError(f"store URI {uri!r}: the scheme {scheme}:// is not supported. Accepted: {ACCEPTED}")
    return scheme


@dataclass(frozen=True)
class ObjectStore:
    """How this process reaches the object store. Unset fields fall back to each SDK's defaults."""

    scheme: str | None = None  # the platform store's (from the profile); None: whichever a URI names
    endpoint: str | None = None  # an S3-compatible store, or an emulator; None: the cloud's own
    region: str | None = None
    path_style: bool = False  # S3: path-style addressing (MinIO, SeaweedFS, moto)
    access_key_id: str | None = None
    secret_access_key: str | None = None
    account: str | None = None  # Azure: the storage account (az:// URIs do not name it)
    account_key: str | None = None  # Azure: a shared key (Azurite, or an account without Entra ID)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ObjectStore:
        """The settings a laptop or CI run gives through the environment (the SDKs' standard names)."""
        env = os.environ if env is None else env
        endpoint = (
            env.get("MLKIT_STORE_ENDPOINT")
            or env.get("MLKIT_S3_ENDPOINT")
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
        )
        return cls(
            endpoint=endpoint,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            path_style=env.get("MLKIT_S3_PATH_STYLE", "true" if endpoint else "false").lower() == "true",
            **cls._credentials(env),
        )

    @classmethod
    def from_profile(cls, profile: TeamProfile, env: dict[str, str] | None = None) -> ObjectStore:
        """The platform's store as the team profile names it; credentials (if any) from the environment."""
        env = os.environ if env is None else env
        store = profile.object_store
        credentials = cls._credentials(env)
        credentials["account"] = store.account or credentials["account"]
        return cls(
            scheme=store.scheme,
            endpoint=store.endpoint,
            region=store.region,
            path_style=store.path_style,
            **credentials,
        )

    @staticmethod
    def _credentials(env) -> dict[str, str | None]:
        return {
            "access_key_id": env.get("AWS_ACCESS_KEY_ID"),
            "secret_access_key": env.get("AWS_SECRET_ACCESS_KEY"),
            "account": env.get("AZURE_STORAGE_ACCOUNT"),
            "account_key": env.get("AZURE_STORAGE_KEY"),
        }

    # --- Python access ---------------------------------------------------------------------------------

    def at(self, uri: str) -> StorePath:
        """The place ``uri`` names, ready to read and write; a StorageError for an unsupported scheme."""
        scheme = scheme_of(uri)
        if scheme == "file":
            return StorePath(self, uri, _local_filesystem(), str(Path(local_path(uri)).absolute()))
        parsed = urlparse(uri)
        key = parsed.path.strip("/")
        if scheme in ("s3", "gs"):
            if not parsed.netloc:
                raise StorageError(f"store URI {uri!r}: no bucket. Accepted: {ACCEPTED}")
            return StorePath(self, uri, self._filesystem(scheme), f"{parsed.netloc}/{key}".rstrip("/"))
        container, account = azure_container(uri)
        return StorePath(self, uri, self._filesystem(scheme, account), f"{container}/{key}".rstrip("/"))

    def _filesystem(self, scheme: str, account: str | None = None) -> pyarrow.fs.FileSystem:
        from pyarrow import fs

        endpoint = urlparse(self.endpoint) if self.endpoint else None
        if scheme == "s3":
            return fs.S3FileSystem(
                access_key=self.access_key_id,
                secret_key=self.secret_access_key,
                region=self.region or ("us-east-1" if endpoint else None),
                endpoint_override=endpoint.netloc if endpoint else None,
                scheme=endpoint.scheme if endpoint else "https",
                # Arrow addresses by path whenever an endpoint is set; a store that wants virtual hosts says so.
                force_virtual_addressing=bool(endpoint) and not self.path_style,
            )
        if scheme == "gs":
            if endpoint:
                return fs.GcsFileSystem(anonymous=True, scheme=endpoint.scheme, endpoint_override=endpoint.netloc)
            return fs.GcsFileSystem()
        account = account or self.account
        if not account:
            raise StorageError(
                f"an {scheme}:// URI needs the storage account: name it in the URI (abfss://<container>@<account>{AZURE_DFS_HOST}/...) or set AZURE_STORAGE_ACCOUNT"
            )
        options: dict = {"account_name": account, "account_key": self.account_key}
        if endpoint:  # Azurite: http://127.0.0.1:10000, the account in the path
            options |= {"blob_storage_authority": endpoint.netloc, "blob_storage_scheme": endpoint.scheme}
            options |= {"dfs_storage_authority": endpoint.netloc, "dfs_storage_scheme": endpoint.scheme}
        return fs.AzureFileSystem(**options)

    # --- Spark and the Rust reader ---------------------------------------------------------------------

    def hadoop_conf(self, scheme: str | None = None) -> dict[str, str]:
        """Hadoop's settings (spark.hadoop.*) for the connector of ``scheme`` (default: this store's scheme;
        with none known, every connector's: their keys do not overlap)."""
        scheme = scheme or self.scheme
        if scheme is None:
            return {k: v for s in ("s3", "gs", "abfss") for k, v in self.hadoop_conf(s).items()}
        if scheme == "gs":
            conf = {
                "fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
                "fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
            }
            if not self.endpoint:
                return conf  # the connector finds GKE's workload identity itself
            return conf | {
                "fs.gs.storage.root.url": self.endpoint.rstrip("/") + "/",
                "fs.gs.auth.type": "UNAUTHENTICATED",  # 3.x
                "fs.gs.auth.null.enable": "true",  # 2.2.x: an emulator wants no token
                "fs.gs.auth.service.account.enable": "false",
                "fs.gs.project.id": "mlkit",
            }
        if scheme in ("abfss", "az"):
            conf = {}
            if self.account and self.account_key:
                conf[f"fs.azure.account.key.{self.account}{AZURE_DFS_HOST}"] = self.account_key
            return conf
        conf = {"fs.s3a.path.style.access": str(self.path_style).lower()}
        if self.endpoint:
            conf["fs.s3a.endpoint"] = self.endpoint
            conf["fs.s3a.connection.ssl.enabled"] = str(self.endpoint.startswith("https")).lower()
        if self.region:
            conf["fs.s3a.endpoint.region"] = self.region
        if self.access_key_id and self.secret_access_key:
            conf["fs.s3a.access.key"] = self.access_key_id
            conf["fs.s3a.secret.key"] = self.secret_access_key
            conf["fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        return conf

    def reader_options(self, scheme: str) -> dict[str, str]:
        """Storage options for the Rust readers (hudi-rs, the object_store crate) for ``scheme``."""
        options: dict[str, str] = {}
        if scheme == "gs":
            if self.endpoint:
                options["google_base_url"] = self.endpoint.rstrip("/")
                options["google_skip_signature"] = "true"
            return options
        if scheme in ("abfss", "az"):
            if self.account:
                options["azure_storage_account_name"] = self.account
            if self.account_key:
                options["azure_storage_account_key"] = self.account_key
            if self.endpoint:
                options["azure_storage_use_emulator"] = "true"
                options["azure_allow_http"] = str(self.endpoint.startswith("http://")).lower()
            return options
        if self.endpoint:
            options["aws_endpoint_url"] = self.endpoint
            options["aws_allow_http"] = str(self.endpoint.startswith("http://")).lower()
            options["aws_virtual_hosted_style_request"] = str(not self.path_style).lower()
        if self.region:
            options["aws_region"] = self.region
        if self.access_key_id and self.secret_access_key:
            options["aws_access_key_id"] = self.access_key_id
            options["aws_secret_access_key"] = self.secret_access_key
        return options

    def s3_client(self):
        """A boto3 S3 client (the table lock's conditional writes, which pyarrow.fs cannot express)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path" if self.path_style else "auto"}),
        )


@dataclass(frozen=True)
class StorePath:
    """One place on a store: a file or a directory tree (object stores have only prefixes)."""

    store: ObjectStore
    uri: str
    fs: pyarrow.fs.FileSystem
    path: str  # the path as ``fs`` names it

    def __truediv__(self, part: str) -> StorePath:
        part = part.strip("/")
        return replace(self, uri=join(self.uri, part), path=f"{self.path.rstrip('/')}/{part}")

    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as stream:
                return stream.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri}: no such object") from None

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        parent = self.path.rpartition("/")[0]
        if parent and self.fs.type_name == "local":
            self.fs.create_dir(parent, recursive=True)
        with self.fs.open_output_stream(self.path) as stream:
            stream.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def exists(self) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self.path).type != fs.FileType.NotFound

    def files(self) -> list[str]:
        """Every file under this place, as paths relative to it, sorted; [] when there is none."""
        from pyarrow import fs

        selector = fs.FileSelector(self.path, recursive=True, allow_not_found=True)
        prefix = self.path.rstrip("/") + "/"
        return sorted(
            info.path.removeprefix(prefix) for info in self.fs.get_file_info(selector) if info.type == fs.FileType.File
        )

    def download(self, directory: Path) -> int:
        """Copy the tree under this place into ``directory``; the number of files."""
        names = self.files()
        for name in names:
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open_input_stream(f"{self.path}/{name}") as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        return len(names)

    def upload(self, directory: Path) -> int:
        """Copy the tree under ``directory`` to this place; the number of files."""
        paths = sorted(p for p in directory.rglob("*") if p.is_file())
        for path in paths:
            (self / path.relative_to(directory).as_posix()).write_bytes(path.read_bytes())
        return len(paths)


def _local_filesystem() -> pyarrow.fs.FileSystem:
    from pyarrow import fs

    return fs.LocalFileSystem()


def azure_container(uri: str) -> tuple[str, str | None]:
    """(container, account) of abfss://<container>@<account>.dfs.core.windows.net/... or az://<container>/..."""
    parsed = urlparse(uri)
    container, at, host = parsed.netloc.partition("@")
    if not container:
        raise StorageError(f"store URI {uri!r}: no container. Accepted: {ACCEPTED}")
    if not at:
        return container, None
    return container, host.split(".", 1)[0] or None


def spark_uri(uri: str) -> str:
    """The URI Spark/Hadoop needs: s3:// is served by the S3A connector as s3a://."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts if p.strip("/"))])


def is_local(uri: str) -> bool:
    return scheme_of(uri) == "file"


def local_path(uri: str) -> str:
    return urlparse(uri).path if uri.startswith("file://") else uri
