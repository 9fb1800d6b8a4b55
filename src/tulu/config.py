"""Typed dataclass configs loaded from YAML recipes, with ``key=value`` overrides.

A config is a (possibly nested) dataclass. Every field carries ``metadata={"help": ...}``; use
:func:`option` to write one. Recipes are YAML mappings whose keys are the field names (nested
dataclasses as nested mappings). Overrides on the command line use dotted keys::

    tulu sft recipes/embedded_cpu_sft.yaml train.learning_rate=1e-5 data.max_seq_length=512

Values of overrides are parsed as YAML scalars (``1e-5``, ``true``, ``[a, b]``, ``{x: 1}``) and then
checked against the field's type. Every error names the file and the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


# Keys that older recipes used, and the one name every recipe uses for them now. An old key stops the run with
# an error that names the new one.
RENAMED = {"name_or_path": "path", "max_seq_length": "max_length"}


class ConfigError(ValueError):
    """A recipe or override that does not fit its config class. The message names file and key."""


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING):
    """A dataclass field with help text (shown by ``tulu <cmd> --help-config``)."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type ``tp``; convert where it is lossless (int->float, str->Path)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads no/off/false (yes/on/true) as booleans
            words = ("yes", "on", "true") if value else ("no", "off", "false")
            value = next((w for w in words if w in get_args(tp)), value)
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            if isinstance(value, str) and "path" in {f.name for f in dataclasses.fields(tp)}:
                raise ConfigError(f"{where}: is a mapping now; write `{where}: {{path: {value}}}` "
                                  f"(override: {where}.path={value})")
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type[T], data: dict, where: str) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    for k in unknown:
        new = RENAMED.get(k)
        if new is not None and new in fields:
            dotted = f"{where}.{k}" if where else k
            raise ConfigError(f"{dotted}: this key was renamed; write {new!r} instead (the same name in every recipe)")
    if unknown:
        known = ", ".join(sorted(fields))
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown key {unknown[0]!r} for {cls.__name__} (known keys: {known})")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        if (isinstance(value, dict) and dataclasses.is_dataclass(hints[name])
                and f.default_factory is not dataclasses.MISSING):
            # A nested block starts from the owner's default for it (DPO's train: block starts from DPO's
            # defaults, not from TrainConfig's): the keys given replace those defaults one by one.
            value = _with_defaults(hints[name], f.default_factory(), value)
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}" if where else name)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where or cls.__name__}: missing required key {missing[0]!r}")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ validation
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc
    return obj


def _with_defaults(tp: type, default: Any, value: dict) -> dict:
    """``value`` (a recipe mapping for dataclass ``tp``) completed with the fields of ``default``, recursively
    for nested dataclass blocks. Unknown keys stay, so that the build reports them."""
    hints = get_type_hints(tp)
    out = dict(value)
    for f in dataclasses.fields(tp):
        sub = getattr(default, f.name)
        if f.name not in out:
            out[f.name] = sub
        elif isinstance(out[f.name], dict) and dataclasses.is_dataclass(hints[f.name]) and dataclasses.is_dataclass(sub):
            out[f.name] = _with_defaults(hints[f.name], sub, out[f.name])
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (for example train.learning_rate=1e-5)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {exc}") from exc
    return key.split("."), value


def _set_path(data: dict, path: list[str], value: Any, cls: type) -> None:
    node, node_cls = data, cls
    for i, part in enumerate(path):
        fields = {f.name: f for f in dataclasses.fields(node_cls)} if dataclasses.is_dataclass(node_cls) else None
        if fields is not None and part not in fields:
            dotted = ".".join(path[: i + 1])
            if RENAMED.get(part) in fields:
                raise ConfigError(f"override {dotted}: this key was renamed; write {RENAMED[part]!r} instead "
                                  f"(the same name in every recipe)")
            raise ConfigError(
                f"override {'.'.join(path)}: unknown key {dotted!r} (known keys: {', '.join(sorted(fields))})"
            )
        if i == len(path) - 1:
            node[part] = value
            return
        sub_tp = get_type_hints(node_cls)[part] if fields is not None else Any
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node, node_cls = nxt, sub_tp if dataclasses.is_dataclass(sub_tp) else dict


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of keys to values")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Build ``cls`` from a YAML recipe (optional) plus ``key=value`` overrides."""
    data = load_yaml(path) if path is not None else {}
    for text in overrides:
        keys, value = parse_override(text)
        _set_path(data, keys, value, cls)
    where = str(path) if path is not None else ""
    try:
        return _build(cls, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


def to_dict(cfg: Any) -> dict:
    """A plain dict (paths as strings) for logging, model cards and hashing."""

    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def describe(cls: type, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) rows for every field, nested ones dotted. A nested block shows its owner's
    defaults (``defaults``: the owner's instance of it), which are what a recipe gets."""
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            sub = getattr(defaults, f.name) if defaults is not None else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            rows.extend(describe(tp, key + ".", sub))
            continue
        if defaults is not None:
            default = repr(getattr(defaults, f.name))
        elif f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append((key, _type_name(tp), default, f.metadata.get("help", "")))
    return rows


def format_help(cls: type) -> str:
    lines = [f"{cls.__name__} fields (set in the recipe, or override with key=value):", ""]
    for key, tp, default, help_text in describe(cls):
        lines.append(f"  {key}  [{tp}] = {default}")
        if help_text:
            for chunk in typing.cast(str, help_text).split("\n"):
                lines.append(f"      {chunk}")
    return "\n".join(lines)
