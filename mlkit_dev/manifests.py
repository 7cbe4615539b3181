"""Validate the Kubernetes manifests the kit writes, offline, strictly.

Built-in kinds are checked against Kubernetes' own OpenAPI schema (kubernetes-validate, strict:
a misspelled field fails). Custom resources are checked against the openAPIV3Schema of their
upstream CRD, made strict the same way (an unknown field fails unless the CRD preserves unknown
fields there). A kind with no schema is an error, never a silent pass.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from infra import versions
from mlkit_dev import SHARED

SHARED_CRDS = SHARED / "crds"


@cache
def crd_schemas(crd_dir: Path = SHARED_CRDS) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict JSON schema, for every CRD file in ``crd_dir``."""
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema:
                    schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def _strict(schema: dict) -> dict:
    """A copy where objects with declared properties reject any other property."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # apiVersion/kind/metadata are checked by the API server itself; allow them at the top.
    schema.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    )
    return schema


def problems(
    document: dict, *, crd_dir: Path = SHARED_CRDS, kubernetes_version: str = versions.KUBERNETES
) -> list[str]:
    """Every schema violation of one manifest, each naming the object and the field path."""
    api_version, kind = document.get("apiVersion", ""), document.get("kind", "")
    name = f"{kind}/{(document.get('metadata') or {}).get('name', '?')}"
    custom = crd_schemas(crd_dir).get((api_version, kind))
    if custom is not None:
        validator = jsonschema.Draft7Validator(custom)
        return [
            f"{name}: {_path(e.absolute_path)}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        ]
    try:
        kubernetes_validate.validate(document, kubernetes_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {api_version} {kind} (neither a Kubernetes kind nor a CRD in {crd_dir})"]
    except kubernetes_validate.ValidationError as e:
        return [f"{name}: {_path(e.absolute_path)}: {e.message}"]
    return []


def validate_all(documents: Iterable[dict], **kwargs) -> list[str]:
    return [p for document in documents if document for p in problems(document, **kwargs)]


def _path(parts) -> str:
    return ".".join(str(p) for p in parts) or "(root)"
