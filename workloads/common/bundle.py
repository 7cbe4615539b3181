"""The model bundle: the files a served model is made of, spelled in this one place.

    model/model.onnx (+ its external data)      the exported model
    training/config.json                        the training config (its feature tables, in order)
    features/<table>/spec.json, transform.json  what requests are validated and transformed with
    meta.json                                   {"name", "version"}: which registered version this is
    monitoring/reference.json                   what its inputs and scores looked like in training (drift's
                                                reference; workloads/monitoring/drift.py), when training wrote one

Training writes the bundle (into its MLflow run; the registry logs the model beside it), export pins
a registered version as a bundle on the object store, serving reads one from a directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workloads.common.specs import FeatureSpec, SpecError, parse_spec
from workloads.common.transform import FittedTransform

MODEL = "model/model.onnx"
CONFIG = "training/config.json"
META = "meta.json"
REFERENCE = "monitoring/reference.json"


def feature_file(table: str, name: str) -> str:
    """features/<table>/spec.json or transform.json, relative to the bundle's root."""
    return f"features/{table}/{name}"


class BundleError(ValueError):
    """The directory is not a readable bundle; the message names the file and what is wrong."""


@dataclass(frozen=True)
class FeatureTable:
    name: str
    spec: FeatureSpec
    transform: FittedTransform


@dataclass(frozen=True)
class ModelBundle:
    directory: Path
    name: str
    version: str
    config: dict
    tables: list[FeatureTable]  # in the order the model's inputs were built

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL

    @property
    def reference_path(self) -> Path:
        return self.directory / REFERENCE

    @staticmethod
    def write_inputs(directory: Path, config: dict, tables: list[FeatureTable]) -> None:
        """What serving needs beside the model: the config, and per table the spec and fitted transformation."""
        _write(directory / CONFIG, json.dumps(config, indent=2))
        for table in tables:
            _write(directory / feature_file(table.name, "spec.json"), table.spec.model_dump_json(indent=2))
            _write(directory / feature_file(table.name, "transform.json"), table.transform.to_json())

    @classmethod
    def write(
        cls, directory: Path, *, onnx: bytes, config: dict, tables: list[FeatureTable], name: str, version: str
    ) -> ModelBundle:
        """A whole bundle in ``directory`` (test fixtures, and models built outside the registry)."""
        cls.write_inputs(directory, config, tables)
        (directory / MODEL).parent.mkdir(parents=True, exist_ok=True)
        (directory / MODEL).write_bytes(onnx)
        cls.write_meta(directory, name, version)
        return cls.read(directory)

    @staticmethod
    def write_meta(directory: Path, name: str, version: str) -> None:
        _write(directory / META, json.dumps({"name": name, "version": str(version)}))

    @classmethod
    def read(cls, directory: Path, *, source: str | None = None) -> ModelBundle:
        """The bundle in ``directory``; a BundleError naming ``source`` (default: the directory) and the file."""
        source = source or str(directory)
        if not (directory / MODEL).is_file():
            raise BundleError(f"{source}: no {MODEL} there (not a model bundle)")
        config = _json(directory, CONFIG, source)
        tables = config.get("feature_tables")
        if not isinstance(tables, list) or not tables or not all(isinstance(t, str) for t in tables):
            raise BundleError(f"{source}: {CONFIG} has no feature_tables list")
        loaded = []
        for table in tables:
            spec_file, transform_file = feature_file(table, "spec.json"), feature_file(table, "transform.json")
            try:
                spec = parse_spec(_json(directory, spec_file, source), f"{source}/{spec_file}")
                transform = FittedTransform.from_json((directory / transform_file).read_text())
            except FileNotFoundError:
                raise BundleError(f"{source}: {transform_file} is missing") from None
            except (SpecError, ValueError) as e:
                raise BundleError(f"{source}: {e}") from None
            loaded.append(FeatureTable(table, spec, transform))
        meta = _json(directory, META, source) if (directory / META).exists() else {}
        return cls(
            directory=directory,
            name=str(meta.get("name", directory.name)),
            version=str(meta.get("version", "local")),
            config=config,
            tables=loaded,
        )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _json(directory: Path, name: str, source: str) -> dict:
    try:
        value = json.loads((directory / name).read_text())
    except FileNotFoundError:
        raise BundleError(f"{source}: {name} is missing") from None
    except ValueError as e:
        raise BundleError(f"{source}: {name} is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise BundleError(f"{source}: {name} is not a JSON object")
    return value
