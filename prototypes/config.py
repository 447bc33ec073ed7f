"""Frozen config dataclasses <-> argparse flags and JSON.

Each component keeps a frozen `<Thing>Config` beside its code; fields are declared with `arg`,
which carries the one-line help text. An experiment composes the configs into one dataclass,
`add_arguments` turns it into flags (`--planner.population 500`, with dashes for underscores,
plus any short aliases such as `--population`), and `from_args` builds it back, running every
`__post_init__` check. Nested configs become dotted flags; the JSON form is `to_dict`/`from_dict`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = ["ConfigError", "arg", "add_arguments", "from_args", "to_dict", "from_dict", "check"]

C = TypeVar("C")


class ConfigError(ValueError):
    """A config value is out of range; the message names the value and what is allowed."""


def arg(default: Any, help: str) -> Any:
    """A dataclass field with a default and its --help text."""
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def check(ok: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `ok` (for use in `__post_init__`)."""
    if not ok:
        raise ConfigError(message)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    prefix: str = "",
    aliases: dict[str, str] | None = None,
) -> None:
    """Add one flag per (nested) field of the dataclass `cls`.

    Args:
        parser: the parser to extend.
        cls: a dataclass type; nested dataclass fields become `--outer.inner` flags in their
            own argument group.
        prefix: dotted prefix of `cls` inside the root config (used in recursion).
        aliases: maps a dotted field name to a short flag name (`{"planner.horizon": "horizon"}`).
    """
    aliases = aliases or {}
    group = parser if not prefix else parser.add_argument_group(prefix.rstrip("."))
    for f, tp in _fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(tp):
            add_arguments(parser, tp, prefix=name + ".", aliases=aliases)
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flags = [f"--{name.replace('_', '-')}"]
        if name in aliases:
            flags.append(f"--{aliases[name]}")
        kwargs: dict[str, Any] = {"dest": name, "default": default}
        help_text = f.metadata.get("help", "")
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(tp) is Literal:
            kwargs["choices"] = list(get_args(tp))
            kwargs["type"] = type(get_args(tp)[0])
        elif tp in (int, float, str):
            kwargs["type"] = tp
            kwargs["metavar"] = {int: "INT", float: "X", str: "STR"}[tp]
        else:
            raise TypeError(f"config field {name} has unsupported type {tp}")
        kwargs["help"] = f"{help_text} (default: %(default)s)"
        group.add_argument(*flags, **kwargs)


def from_args(cls: type[C], ns: argparse.Namespace, prefix: str = "") -> C:
    """Build `cls` from parsed flags; `__post_init__` checks run and may raise `ConfigError`."""
    kwargs = {}
    for f, tp in _fields(cls):
        name = prefix + f.name
        kwargs[f.name] = (
            from_args(tp, ns, name + ".") if dataclasses.is_dataclass(tp) else getattr(ns, name)
        )
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A flat {dotted name: value} dict of a (nested) config, as stored in config.json."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out.update({f"{f.name}.{k}": x for k, x in to_dict(v).items()})
        else:
            out[f.name] = v
    return out


def from_dict(cls: type[C], flat: dict[str, Any], prefix: str = "") -> C:
    """Inverse of `to_dict` (missing keys take their defaults)."""
    kwargs = {}
    for f, tp in _fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = from_dict(tp, flat, name + ".")
        elif name in flat:
            kwargs[f.name] = flat[name]
    return cls(**kwargs)
