"""Frozen config dataclasses <-> argparse flags and JSON.

Each component keeps a frozen `<Thing>Config` beside its code; fields are declared with `arg`,
which carries the one-line help text, and checked in `__post_init__` with `check`. An experiment
composes the configs into one dataclass; `add_arguments` turns a config instance into flags
(`--planner.population 500`, with dashes for underscores, plus any short aliases such as
`--population`) whose defaults are that instance's values, and `from_args` builds it back,
running every check. Nested configs become dotted flags; a field typed `Any` may hold any config
(a model's, whose class depends on the model kind). The JSON form is `to_dict`/`from_dict`;
`replace_flat` applies dotted overrides (a task's defaults) to an instance, checked once.
Layering the defaults of an experiment (class, then task, then flags) is experiments/cli.py's.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = [
    "ConfigError",
    "arg",
    "check",
    "add_arguments",
    "from_args",
    "to_dict",
    "from_dict",
    "replace_flat",
    "alias_list",
    "finite_float",
]

C = TypeVar("C")


class ConfigError(ValueError):
    """A config value is out of range; the message names the value and what is allowed."""


_UNSET = object()


def arg(default: Any, help: str, *, absent: Any = _UNSET) -> Any:
    """A dataclass field with a default and its --help text.

    `absent`: the value that a config saved before the field existed implicitly has, when that
    is no longer `default` (a default changed after the field was added: the run, a results
    sidecar, still means the old behaviour). See `declared_defaults`."""
    meta = {"help": help} if absent is _UNSET else {"help": help, "absent": absent}
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check(ok: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `ok` (for use in `__post_init__`)."""
    if not ok:
        raise ConfigError(message)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _instance(cfg: Any) -> Any:
    """`cfg` itself, or the class's default instance if `cfg` is a class."""
    return cfg() if isinstance(cfg, type) else cfg


def finite_float(text: str) -> float:
    """argparse `type` for float flags: a finite number, so that "nan" or "inf" end in one line
    at parse time (a NaN passes no range check, and a field that means "no limit" says so with
    its own value, not inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def alias_list(alias: str | Sequence[str] | None) -> list[str]:
    """The flag names (without dashes) of one `aliases` entry: none, one or several."""
    return [] if alias is None else [alias] if isinstance(alias, str) else list(alias)


def add_arguments(
    parser: argparse.ArgumentParser,
    cfg: Any,
    *,
    prefix: str = "",
    aliases: Mapping[str, str | Sequence[str]] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """Add one flag per (nested) field of a config, defaulting to that config's values.

    Args:
        parser: the parser to extend.
        cfg: a config instance (its values are the flags' defaults, so an experiment's or a
            task's overrides show in --help and need not be restated), or a config class (its
            defaults). A field whose value is itself a config becomes `--outer.inner` flags in
            their own argument group, whatever the field's declared type (a model's config is
            typed `Any`: its class depends on the model kind).
        prefix: dotted prefix of `cfg` inside the root config (used in recursion).
        aliases: maps a dotted field name to a short flag name (`{"planner.horizon": "horizon"}`)
            or a tuple of them. For a bool field, an alias "no-x" adds `--no-x` setting False.
        choices: maps a dotted field name to its allowed values (for `str` fields whose values
            come from a registry, e.g. the model kind).
    """
    cfg = _instance(cfg)
    aliases, choices = aliases or {}, choices or {}
    group = parser if not prefix else parser.add_argument_group(prefix.rstrip("."))
    for f, tp in _fields(type(cfg)):
        name = prefix + f.name
        default = getattr(cfg, f.name)
        if dataclasses.is_dataclass(default):
            add_arguments(parser, default, prefix=name + ".", aliases=aliases, choices=choices)
            continue
        flags = [f"--{name.replace('_', '-')}"]
        names = alias_list(aliases.get(name))
        # a bool's alias "no-x" is a second way to say False (--no-model for --no-use-model)
        negations = [a for a in names if tp is bool and a.startswith("no-")]
        flags += [f"--{a}" for a in names if a not in negations]
        kwargs: dict[str, Any] = {"dest": name, "default": default}
        # argparse %-formats help strings: a literal % in a config's help ("95% of") must not
        # break --help
        help_text = f.metadata.get("help", "").replace("%", "%%")
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(tp) is Literal:
            kwargs["choices"] = list(get_args(tp))
            kwargs["type"] = type(get_args(tp)[0])
        elif tp in (int, float, str):
            kwargs["type"] = finite_float if tp is float else tp
            kwargs["metavar"] = {int: "INT", float: "X", str: "STR"}[tp]
        else:
            raise TypeError(f"config field {name} has unsupported type {tp}")
        if name in choices:
            kwargs["choices"] = list(choices[name])
            kwargs.pop("metavar", None)
        kwargs["help"] = f"{help_text} (default: %(default)s)"
        group.add_argument(*flags, **kwargs)
        for a in negations:
            group.add_argument(
                f"--{a}",
                dest=name,
                action="store_false",
                help=f"same as {flags[0]}".replace("--", "--no-", 1),
            )


def from_args(cfg: C | type[C], ns: argparse.Namespace, prefix: str = "") -> C:
    """Build a config from parsed flags, shaped like `cfg` (an instance: nested configs keep
    their classes; or a class). `__post_init__` checks run and may raise `ConfigError`."""
    cfg = _instance(cfg)
    kwargs = {}
    for f in dataclasses.fields(cfg):
        name, value = prefix + f.name, getattr(cfg, f.name)
        kwargs[f.name] = (
            from_args(value, ns, name + ".")
            if dataclasses.is_dataclass(value)
            else getattr(ns, name)
        )
    return type(cfg)(**kwargs)


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


def declared_defaults(cfg: Any) -> dict[str, Any]:
    """The flat {dotted name: value} defaults that the classes of `cfg` (an instance: nested
    configs by their own classes) declare on their fields, before any command-line layer.

    A field added to a config must default to the behaviour of the code before it existed; these
    are then the values that a run saved before the field was added implicitly had (see
    `prototypes.data.runs.open_run`). A field whose default changed later declares that older
    value as `arg(..., absent=...)`, and it is the one given here."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out.update({f"{f.name}.{k}": x for k, x in declared_defaults(v).items()})
        elif "absent" in f.metadata:
            out[f.name] = f.metadata["absent"]
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def from_dict(cfg: C | type[C], flat: Mapping[str, Any], prefix: str = "") -> C:
    """Inverse of `to_dict`, shaped like `cfg` (an instance or a class); missing keys keep
    `cfg`'s values."""
    cfg = _instance(cfg)
    kwargs = {}
    for f in dataclasses.fields(cfg):
        name, value = prefix + f.name, getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            kwargs[f.name] = from_dict(value, flat, name + ".")
        elif name in flat:
            kwargs[f.name] = flat[name]
        else:
            kwargs[f.name] = value
    return type(cfg)(**kwargs)


def replace_flat(cfg: C, overrides: Mapping[str, Any]) -> C:
    """`cfg` with dotted fields replaced (`{"planner.horizon": 25}`), all checks run once.

    Raises:
        ConfigError: a key names no field of `cfg` (the message lists the close ones), or a
            replaced value fails a check.
    """
    known = to_dict(cfg)
    for key in overrides:
        if key not in known:
            near = [k for k in known if k.split(".")[-1] == key.split(".")[-1]]
            raise ConfigError(
                f"{key!r} is not a config field"
                + (f" (did you mean {', '.join(near)}?)" if near else "")
            )
    return from_dict(cfg, overrides)
