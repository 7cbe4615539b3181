"""The whole stack-config schema, and the one way to load it: from a stack file or from Pulumi.

Every problem is reported with the stack file, the key path as written in the file
(``mlkit:nodePools[1].maxSize``) and what was expected; all problems at once, not the first.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, create_model, model_validator
from pydantic_core import ErrorDetails

from infra.clouds import TARGETS
from infra.config import (
    ChartSource,
    ConfigModel,
    Images,
    Kubernetes,
    NodePool,
    ObjectStorage,
    Platform,
    Policy,
    TargetConfig,
    Team,
)

PROJECT = "mlkit"  # the Pulumi project name, and so the config namespace: `mlkit:target`
REPO_ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = REPO_ROOT / "stacks"

# Namespaces a stack file may set besides ours: Pulumi's own and the providers the kit uses.
OTHER_NAMESPACES = {"pulumi", "aws", "gcp", "azure-native", "kubernetes", "command", "random", "tls"}
STACK_FILE_KEYS = {"config", "encryptionsalt", "secretsprovider", "encryptedkey", "environment"}
# Namespaces the platform itself owns; a team by such a name would collide with them.
RESERVED_NAMESPACES = {"default", "mlkit-system", "monitoring", "kubeflow", "seldon-system", "spark-operator", "mlflow"}
# Provider settings that are credentials: those the providers' SDKs mark secret, plus GCP's key file
# and Azure's OIDC tokens. In a stack file they must be ciphertext, like the kit's own secrets.
# (azure-native:clientId is marked secret by its SDK but is an application id, not a credential.)
PROVIDER_SECRETS = {
    "aws:accesskey",
    "aws:secretkey",
    "aws:token",
    "gcp:accesstoken",
    "gcp:credentials",
    "azure-native:clientsecret",
    "azure-native:clientcertificatepassword",
    "azure-native:oidctoken",
    "azure-native:oidcrequesttoken",
}

# Limits on what `load_stack_file` reads. The shipped stack files are ~2 KB, 6 levels deep, ~100 values;
# these limits are far above any real stack and far below what exhausts the loader.
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64  # PyYAML's pure-Python composer recurses per level and overflows near 500
MAX_VALUES = 100_000  # after aliases are expanded: a few anchors can otherwise stand for billions
MAX_INT_CHARS = 100  # int() refuses over 4,300 digits, and YAML 1.1's base-60 ints cost quadratic time
MAX_SHOWN_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    key: str  # as written in the stack file, e.g. "mlkit:nodePools[1].maxSize"; "" for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class StackConfigError(Exception):
    """A stack's config is invalid. ``problems`` lists each one with its key path."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        lines = "\n".join(f"  {p}" for p in shown_problems(problems))
        super().__init__(f"{source}: {count}\n{lines}")


def shown_problems(problems: list[Problem]) -> list[str]:
    """The problems as text, the first MAX_SHOWN_PROBLEMS of them and then "+N more"."""
    shown = [str(p) for p in problems[:MAX_SHOWN_PROBLEMS]]
    if len(problems) > MAX_SHOWN_PROBLEMS:
        shown.append(f"+{len(problems) - MAX_SHOWN_PROBLEMS} more")
    return shown


class _CrossFieldProblems(Exception):
    """Raised from inside validation; not a ValueError, so pydantic lets it through intact."""

    def __init__(self, problems: list[tuple[tuple, str]]):
        self.problems = problems


class StackConfig(ConfigModel):
    """The ``mlkit:`` namespace of a stack file. ``target`` is one registered target's block, chosen by its ``type``."""

    target: TargetConfig
    kubernetes: Kubernetes = Kubernetes()
    node_pools: list[NodePool] = Field(default_factory=list)
    storage: ObjectStorage
    platform: Platform = Platform()
    teams: list[Team] = Field(default_factory=list)
    charts: ChartSource = ChartSource()
    images: Images = Images()
    policy: Policy = Policy()

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo) -> StackConfig:
        problems = [
            *self._cluster_name_problems((info.context or {}).get("stack")),
            *self._target_problems(),
            *self._name_problems(),
            *self._gpu_quota_problems(),
            *self._image_problems(),
        ]
        if problems:
            raise _CrossFieldProblems(problems)
        return self

    def _cluster_name_problems(self, stack: str | None):
        pattern, description = self.target.cluster_name_rule
        if stack is not None and not re.fullmatch(pattern, cluster_name(stack)):
            yield (
                ("target", "type"),
                f"stack {stack!r} names its cluster {cluster_name(stack)!r}, which this target refuses: "
                f"expected {description}; pick a shorter stack name",
            )

    def _target_problems(self):
        block = self.target
        for i, pool in enumerate(self.node_pools):
            for field, message in block.node_pool_problems(pool):
                yield ("nodePools", i, *_path(field)), message
        # System pods need nodes that stay: a spot node is reclaimed at any time (and AKS refuses a spot system pool).
        if block.provisions_nodes and not any(
            p.gpu is None and p.min_size >= 1 and not p.spot for p in self.node_pools
        ):
            yield (
                ("nodePools",),
                "needs at least one on-demand CPU pool (no gpu, spot: false) with minSize >= 1 to run system pods",
            )
        if problem := block.bucket_name_problem(self.storage.bucket):
            yield ("storage", "bucket"), problem
        for message in block.kubernetes_problems(self.kubernetes.version):
            yield ("kubernetes", "version"), message
        for i, team in enumerate(self.teams):
            for field, message in block.team_problems(team):
                yield ("teams", i, *_path(field)), message
        for field, message in block.block_problems(self.teams):
            yield ("target", *_path(field)), message

    def _name_problems(self):
        for key, items in (("nodePools", self.node_pools), ("teams", self.teams)):
            seen: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.name in seen:
                    yield (
                        (key, i, "name"),
                        f"{item.name!r} is already used by {key}[{seen[item.name]}]; names must be unique",
                    )
                seen.setdefault(item.name, i)
        for i, team in enumerate(self.teams):
            if team.name in RESERVED_NAMESPACES or team.name.startswith("kube-"):
                yield ("teams", i, "name"), f"{team.name!r} is a namespace the platform uses; pick another team name"

    def _gpu_quota_problems(self):
        if any(p.gpu for p in self.node_pools):
            return
        for i, team in enumerate(self.teams):
            if team.quotas.gpu:
                yield (
                    ("teams", i, "quotas", "gpu"),
                    f"is {team.quotas.gpu}, but no node pool has GPUs; add a GPU pool or set 0",
                )

    def _image_problems(self):
        if self.platform.mlflow.enabled and not self.images.registry:
            yield (
                ("images", "registry"),
                "is required while platform.mlflow is enabled: the tracking server runs the kit's MLflow image "
                "(workloads/mlflow/Dockerfile); build and push it with `make images REGISTRY=<registry>`",
            )


def _path(field: str) -> tuple[str | int, ...]:
    """``gpu.count`` -> ("gpu", "count"); ``groups.1`` -> ("groups", 1)."""
    return tuple(int(part) if part.isdigit() else part for part in field.split("."))


def cluster_name(stack: str) -> str:
    """The name every resource of a stack starts with, the cluster's own included."""
    return f"mlkit-{stack}"


# --- loading -----------------------------------------------------------------------------------


def stack_path(stack: str) -> Path:
    """A stack name (``aws``) or a path to a stack file -> the stack file's path."""
    if stack.endswith((".yaml", ".yml")) or "/" in stack:
        return Path(stack)
    return STACKS_DIR / f"Pulumi.{stack}.yaml"


def _stack_name(path: Path) -> str | None:
    """`Pulumi.<stack>.yaml` -> the stack; None for a file named otherwise."""
    match = re.fullmatch(r"Pulumi\.(.+)\.ya?ml", path.name)
    return match.group(1) if match else None


def stack_names() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


def load_stack_file(stack: str) -> StackConfig:
    """Load and validate one stack file. Raises StackConfigError naming the file and every problem."""
    path = stack_path(stack)
    source = _display(path)
    try:
        document = _read_yaml(path)
    except FileNotFoundError:
        known = ", ".join(stack_names()) or "none"
        raise StackConfigError(source, [Problem("", f"no such stack file (stacks here: {known})")]) from None
    except OSError as e:
        raise StackConfigError(source, [Problem("", f"cannot read: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        raise StackConfigError(source, [Problem("", f"not UTF-8 text: {e.reason} at byte {e.start}")]) from e
    except yaml.YAMLError as e:
        raise StackConfigError(source, [Problem("", f"not valid YAML: {_yaml_reason(e)}")]) from e
    except _Refused as e:
        raise StackConfigError(source, [Problem("", str(e))]) from None
    try:
        values, problems = _project_values(document)
    except StackConfigError as e:
        raise StackConfigError(source, e.problems) from None
    try:
        config = parse_stack(values, source, decrypted=False, stack=_stack_name(path))
    except StackConfigError as e:
        problems += e.problems
    else:
        if not problems:
            return config
    raise StackConfigError(source, problems)


class _Refused(Exception):
    """The file is beyond a loading limit; the message says which and where."""


def _read_yaml(path: Path) -> Any:
    if not path.is_file():  # a directory or a device is no stack file either
        raise FileNotFoundError(path)
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)  # never more: the limit holds for a file that grows while read
    if len(data) > MAX_FILE_BYTES:
        size = max(path.stat().st_size, len(data))
        raise _Refused(f"the file is {size:,} bytes; a stack file may be at most {MAX_FILE_BYTES:,} bytes")
    text = data.decode("utf-8")
    _check_shape(text)
    return yaml.load(text, Loader=_StrictLoader)


def _check_shape(text: str) -> None:
    """Refuse deep nesting and alias bombs from the event stream, before any node is built."""
    open_nodes: list[list] = []  # [anchor, expanded size] of each collection being read
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node
    total = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels{_where(event.start_mark)}")
            open_nodes.append([event.anchor, 1])
            size = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, whole = open_nodes.pop()
            if anchor:
                sizes[anchor] = whole
            if open_nodes:
                open_nodes[-1][1] += whole
            continue
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                raise _Refused(f"alias *{event.anchor} refers to a node that contains it{_where(event.start_mark)}")
            size = sizes.get(event.anchor, 1)  # an undefined alias: the loader reports it
        else:
            continue
        if open_nodes and not isinstance(event, yaml.CollectionStartEvent):
            open_nodes[-1][1] += size
        total += size
        if total > MAX_VALUES:
            raise _Refused(
                f"holds more than {MAX_VALUES:,} values once its aliases are expanded{_where(event.start_mark)}"
            )


def load_pulumi_config(config: dict[str, str], stack: str) -> StackConfig:
    """Validate the config Pulumi hands a running program (values are strings, objects JSON-encoded)."""
    values = {}
    for key, raw in config.items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT:
            values[name] = _decode(raw)
    return parse_stack(values, f"{_display(stack_path(stack))} (stack {stack})", decrypted=True, stack=stack)


_MODELS: dict[tuple[type[TargetConfig], ...], type[StackConfig]] = {}


def stack_model() -> type[StackConfig]:
    """StackConfig with ``target`` as the union of every registered target's block, told apart by ``type``."""
    blocks = tuple(plugin.config for plugin in TARGETS.values())
    if blocks not in _MODELS:
        union = Annotated[Union[blocks], Field(discriminator="type")]  # noqa: UP007 - a union built at run time
        _MODELS[blocks] = create_model("StackConfig", __base__=StackConfig, target=(union, ...))
    return _MODELS[blocks]


def parse_stack(values: dict[str, Any], source: str, *, decrypted: bool, stack: str | None = None) -> StackConfig:
    """Validate the ``mlkit:`` values of a stack (keys without the namespace); ``stack``: its name, where known."""
    context = {"source": "pulumi" if decrypted else "file", "stack": stack}
    if migration := _old_shape(values):
        raise StackConfigError(source, migration)
    try:
        return stack_model().model_validate(values, context=context)
    except ValidationError as e:
        raise StackConfigError(source, [_problem_from_pydantic(err) for err in e.errors()]) from None
    except _CrossFieldProblems as e:
        raise StackConfigError(source, [Problem(_key(loc), msg) for loc, msg in e.problems]) from None


def _old_shape(values: dict[str, Any]) -> list[Problem]:
    """Stacks written before the target became one block: `mlkit:target: aws` beside `mlkit:aws: {...}`."""
    target = values.get("target")
    blocks = [name for name in TARGETS if name in values]
    if not (isinstance(target, str) or blocks):
        return []
    name = target if isinstance(target, str) else blocks[0]
    how = (
        f"move the keys of `{PROJECT}:{name}` under `{PROJECT}:target` beside `type: {name}`, "
        f"e.g. `{PROJECT}:target: {{type: {name}, ...}}`, and delete `{PROJECT}:{name}`"
    )
    if isinstance(target, str):
        return [Problem(f"{PROJECT}:target", f"is now the target's whole block, not its name: {how}")]
    return [Problem(f"{PROJECT}:{name}", f"is a target block in the old shape: {how}")]


def _project_values(document: Any) -> tuple[dict[str, Any], list[Problem]]:
    """The ``mlkit:`` values of a stack document, and the problems outside them."""
    if document is None:
        raise StackConfigError("", [Problem("", "the file is empty; expected a mapping with a `config:` key")])
    if not isinstance(document, dict):
        raise StackConfigError(
            "", [Problem("", f"expected a mapping with a `config:` key, got {_type_name(document)}")]
        )
    problems = [
        Problem(str(k), f"unknown top-level key; expected one of: {', '.join(sorted(STACK_FILE_KEYS))}")
        for k in document
        if k not in STACK_FILE_KEYS
    ]
    config = document.get("config")
    if not isinstance(config, dict):
        got = "nothing" if config is None else _type_name(config)
        raise StackConfigError(
            "", [*problems, Problem("config", f"expected a mapping of `{PROJECT}:<key>: <value>`, got {got}")]
        )
    values: dict[str, Any] = {}
    for key, value in config.items():
        namespace, sep, name = str(key).rpartition(":")
        if not sep or namespace == PROJECT:
            values[name] = value
        elif str(key).lower() in PROVIDER_SECRETS and not _is_ciphertext(value):
            problems.append(
                Problem(
                    str(key),
                    "secrets may not be written in plain text: store it with "
                    f"`pulumi config set --secret {key} <value>`",
                )
            )
        elif namespace not in OTHER_NAMESPACES:
            hint = _did_you_mean(namespace, [PROJECT, *OTHER_NAMESPACES])
            problems.append(Problem(str(key), f"unknown config namespace {namespace!r}{hint}"))
    return values, problems


# --- error formatting --------------------------------------------------------------------------


def _key(loc: tuple) -> str:
    if loc[:1] == ("target",) and len(loc) > 1 and loc[1] in TARGETS:
        loc = loc[:1] + loc[2:]  # the union's tag: the block's own `type` says which target it is
    out = f"{PROJECT}:"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("" if out.endswith(":") else ".") + str(part)
    return out


def _problem_from_pydantic(err: ErrorDetails) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "missing":
        return Problem(_key(loc), "is required")
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        types_ = ", ".join(sorted(TARGETS))
        got = err.get("ctx", {}).get("tag")
        what = f"{got!r} is no target type" if got is not None else "is required"
        return Problem(_key((*loc, "type")), f"{what}; expected one of: {types_}")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = _did_you_mean(str(loc[-1]), allowed)
        expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return Problem(_key(loc), f"unknown key{hint}{expected}")
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if not isinstance(value, dict | list) and kind not in ("value_error", "assertion_error"):
        message += f" (got {value!r})"
    if kind == "string_type" and isinstance(value, int | float):
        message += "; quote it in YAML so it stays text, e.g. '1.30'"
    return Problem(_key(loc), message)


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys a mapping at ``loc`` may hold, by walking the schema's types."""
    node: Any = stack_model()
    for part in loc:
        node = _unwrap(node)
        if part in TARGETS and _is_target_union(node):
            node = TARGETS[part].config
        elif isinstance(part, int):
            args = typing.get_args(node)
            node = args[0] if args else None
        elif isinstance(node, type) and issubclass(node, BaseModel):
            node = next((f.annotation for f in node.model_fields.values() if f.alias == part), None)
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        else:
            return []
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [f.alias or name for name, f in node.model_fields.items()]
    return []


def _is_target_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and all(
        isinstance(a, type) and issubclass(a, TargetConfig) for a in typing.get_args(tp)
    )


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and not _is_target_union(tp):
        models = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else tp
    return tp


def _did_you_mean(word: str, choices: list[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _yaml_reason(e: yaml.YAMLError) -> str:
    return f"{getattr(e, 'problem', None) or e}{_where(getattr(e, 'problem_mark', None))}"


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _is_ciphertext(value: Any) -> bool:
    """What `pulumi config set --secret` writes: {secure: <ciphertext>}."""
    return isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str)


def _decode(raw: Any) -> Any:
    # Pulumi passes object and list values JSON-encoded, scalars as plain strings.
    if isinstance(raw, str) and raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


# libyaml's parser where PyYAML was built with it: several times faster. Its composer recurses in C,
# so _check_shape caps the nesting before it runs.
try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader


class _StrictLoader(_BaseLoader):  # pyright: ignore[reportGeneralTypeIssues] - libyaml's loader where PyYAML has it
    """SafeLoader that rejects duplicate keys, which plain YAML silently overwrites, and overlong integers."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_INT_CHARS:
            where = _where(node.start_mark)
            raise _Refused(
                f"an integer of {len(node.value):,} characters{where}; a config value has at most {MAX_INT_CHARS}"
            )
        return super().construct_yaml_int(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
