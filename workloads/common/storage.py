"""Object-store addressing shared by every workload: one URI, the right settings for each reader.

The platform hands workloads their store through environment variables (set from the cluster
target's contract); locally they point at a directory or at an S3-compatible endpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class ObjectStore:
    """Connection settings for s3:// URIs. Unset fields fall back to the SDKs' own defaults (IRSA, profiles)."""

    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    path_style: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ObjectStore:
        env = os.environ if env is None else env
        endpoint = env.get("MLKIT_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        return cls(
            endpoint=endpoint,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            path_style=env.get("MLKIT_S3_PATH_STYLE", "true" if endpoint else "false").lower() == "true",
        )

    def hadoop_conf(self) -> dict[str, str]:
        """Spark's S3A settings (spark.hadoop.fs.s3a.*) for this store."""
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

    def s3_client(self):
        """A boto3 S3 client for this store (boto3 is imported here: not every workload ships it)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            # S3-compatible stores (SeaweedFS on kind, MinIO on-prem) want path-style addressing.
            config=Config(s3={"addressing_style": "path" if self.path_style else "auto"}),
        )

    def reader_options(self) -> dict[str, str]:
        """Storage options for the Rust readers (hudi-rs, object_store crate)."""
        options = {}
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


def spark_uri(uri: str) -> str:
    """The URI Spark/Hadoop needs: s3:// is served by the S3A connector as s3a://."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def local_path(uri: str) -> str:
    return urlparse(uri).path if uri.startswith("file://") else uri
