"""A stand-in for kfp.Client where no KFP API server can run (it needs MySQL, object storage and Argo): each call is
checked against the real kfp.Client method's signature, so a renamed or misspelt keyword fails."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import kfp


class RecordingClient:
    """kfp.Client's methods start_run calls, each call checked against the real method's signature."""

    def __init__(self, runs=()):
        self.calls, self.runs = [], list(runs)

    def _record(self, method, **kwargs):
        inspect.signature(getattr(kfp.Client, method)).bind(self, **kwargs)  # TypeError on a wrong keyword
        self.calls.append((method, kwargs))

    def get_experiment(self, **kw):
        self._record("get_experiment", **kw)
        raise ValueError("No experiment is found with name retraining")

    def create_experiment(self, name, **kw):
        self._record("create_experiment", name=name, **kw)
        return SimpleNamespace(experiment_id="e1")

    def list_runs(self, **kw):
        self._record("list_runs", **kw)
        return SimpleNamespace(runs=self.runs)

    def get_pipeline_id(self, name):
        self._record("get_pipeline_id", name=name)
        return "p1"

    def list_pipeline_versions(self, pipeline_id, **kw):
        self._record("list_pipeline_versions", pipeline_id=pipeline_id, **kw)
        return SimpleNamespace(pipeline_versions=[SimpleNamespace(pipeline_version_id="v9")])

    def run_pipeline(self, **kw):
        self._record("run_pipeline", **kw)
        return SimpleNamespace(run_id="r1")
