"""Prometheus, Alertmanager and the Pushgateway (Debian's packages) on loopback, each with its own config and data
directory: the monitoring tests and `make demo` run the platform's alert path with the real servers.

Alertmanager's gossip port is turned off (it would otherwise bind every interface on 9094); the Pushgateway keeps
its groups in memory only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import requests
import yaml

from mlkit_dev.local import LocalProcess, free_port


def binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise RuntimeError(
            f"`{name}` is not installed: run `make setup` (requirements/apt.txt lists its Debian package)"
        )
    return path


class LocalPushgateway(LocalProcess):
    def __init__(self):
        self.port = free_port()
        super().__init__(
            # Debian's build persists to /var/lib/prometheus by default, which every local gateway would share.
            [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file="],
            f"{self.url}/-/ready",
            dict(os.environ),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalAlertmanager(LocalProcess):
    """Routes alerts labelled mlkit_action=retrain to ``webhook`` with a bearer token read from ``token_file``."""

    def __init__(self, webhook: str, token_file: Path, *, group_interval: str = "5s", repeat_interval: str = "1m"):
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="mlkit-alertmanager-"))
        config = {
            "route": {
                "receiver": "nobody",
                "group_by": ["alertname", "namespace", "registered_model", "registered_version"],
                "group_wait": "1s",
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
                "routes": [{"receiver": "retrain", "matchers": ['mlkit_action="retrain"']}],
            },
            "receivers": [
                {"name": "nobody"},
                {
                    "name": "retrain",
                    "webhook_configs": [
                        {
                            "url": webhook,
                            "send_resolved": True,
                            "http_config": {"authorization": {"credentials_file": str(token_file)}},
                        }
                    ],
                },
            ],
        }
        (self.directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
        super().__init__(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={self.directory / 'alertmanager.yml'}",
                f"--storage.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            f"{self.url}/-/ready",
            dict(os.environ),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict]:
        return requests.get(f"{self.url}/api/v2/alerts", timeout=10).json()

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class LocalPrometheus(LocalProcess):
    """Scrapes ``targets`` (job name -> host:port and path) every second and evaluates ``rules`` every second."""

    def __init__(self, rules: dict, targets: dict[str, tuple[str, str]], alertmanager: str | None = None):
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="mlkit-prometheus-"))
        (self.directory / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.directory / "rules.yml")],
            "scrape_configs": [
                # The Pushgateway's pushed labels (namespace, model, version) are the ones that count.
                {
                    "job_name": job,
                    "honor_labels": True,
                    "metrics_path": path,
                    "static_configs": [{"targets": [address]}],
                }
                for job, (address, path) in targets.items()
            ],
        }
        if alertmanager:
            address = alertmanager.removeprefix("http://")
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [address]}]}]}
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__(
            [
                binary("prometheus"),
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            f"{self.url}/-/ready",
            dict(os.environ),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        return answer["data"]["result"]

    def alerts(self) -> list[dict]:
        return requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)
