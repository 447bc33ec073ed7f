"""World models by kind: one place that knows every model, its config class and how to build it.

>>> cfg = model_config("ensemble")()            # the kind's config class, at its defaults
>>> model = make_model("ensemble", cfg, get_spec("reacher"))

A new world model is its own module plus one `register_model` line (below, for the built-in
kinds; anywhere before the experiment parses its flags, for a model of your own, e.g. in a test):

    register_model("toy", ToyConfig, lambda cfg, spec, env: make_toy(cfg, spec), "a toy model")

The build function is `(cfg, spec, env) -> WorldModel`. `env` is the live gymnasium env of the
task, passed only to kinds registered with `needs_env=True` (the oracle reads the simulator's
physics from it); learned models never see it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, is_dataclass
from typing import Any

import gymnasium as gym

from prototypes.config import arg, check
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import WorldModel
from prototypes.models.ensemble import EnsembleConfig, make_ensemble

__all__ = [
    "ModelKind",
    "OracleConfig",
    "register_model",
    "model_kinds",
    "get_model_kind",
    "model_config",
    "make_model",
]

BuildFn = Callable[[Any, EnvSpec, "gym.Env | None"], WorldModel]


@dataclass(frozen=True)
class ModelKind:
    """One registered kind of world model.

    Attributes:
        name: the kind's name, as given to `--model`.
        config: its frozen config dataclass (every field defaulted, validated in __post_init__).
        build: (cfg, spec, env) -> WorldModel.
        help: one line for --help listings.
        needs_env: the model needs the live env (simulator-backed models).
    """

    name: str
    config: type
    build: BuildFn
    help: str
    needs_env: bool = False


_KINDS: dict[str, ModelKind] = {}


def register_model(
    name: str, config: type, build: BuildFn, help: str, *, needs_env: bool = False
) -> ModelKind:
    """Register a kind of world model under `name` (re-registering a name replaces it).

    Raises:
        TypeError: `config` is not a dataclass whose fields all have defaults.
    """
    try:
        is_config = is_dataclass(config) and isinstance(config, type) and config() is not None
    except TypeError:  # a field without a default
        is_config = False
    if not is_config:
        raise TypeError(
            f"model kind {name!r}: config {config!r} must be a dataclass with every field defaulted"
        )
    kind = ModelKind(name=name, config=config, build=build, help=help, needs_env=needs_env)
    _KINDS[name] = kind
    return kind


def model_kinds() -> tuple[str, ...]:
    """The registered kind names, sorted."""
    return tuple(sorted(_KINDS))


def get_model_kind(name: str) -> ModelKind:
    """The registered kind `name`; ValueError naming the registered kinds otherwise."""
    if name not in _KINDS:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(model_kinds())}")
    return _KINDS[name]


def model_config(name: str) -> type:
    """The config class of kind `name`."""
    return get_model_kind(name).config


def make_model(kind: str, cfg: Any | None, spec: EnvSpec, env: gym.Env | None = None) -> WorldModel:
    """Build the world model of kind `kind` for task `spec`.

    Args:
        kind: a registered name (`model_kinds()`).
        cfg: an instance of the kind's config class, or None for its defaults.
        spec: the task.
        env: the live env; required by kinds registered with `needs_env`, ignored otherwise.

    Raises:
        ValueError: unknown kind, a config of another kind's class, or a missing env.
    """
    entry = get_model_kind(kind)
    cfg = entry.config() if cfg is None else cfg
    if not isinstance(cfg, entry.config):
        raise ValueError(
            f"model {kind!r} takes a config of class {entry.config.__name__}, "
            f"got {type(cfg).__name__}"
        )
    if entry.needs_env and env is None:
        raise ValueError(f"model {kind!r} needs the live env of task {spec.name!r}: pass env=")
    return entry.build(cfg, spec, env if entry.needs_env else None)


# --- the built-in kinds -------------------------------------------------------------------------


@dataclass(frozen=True)
class OracleConfig:
    threads: int = arg(2, "MuJoCo rollout threads the true simulator runs on")

    def __post_init__(self) -> None:
        check(self.threads >= 1, f"threads must be >= 1, got {self.threads}")


def _build_oracle(cfg: OracleConfig, spec: EnvSpec, env: gym.Env | None) -> WorldModel:
    from prototypes.models.oracle import make_oracle  # mujoco.rollout, only when asked for

    return make_oracle(spec, env, threads=cfg.threads)


register_model(
    "ensemble",
    EnsembleConfig,
    lambda cfg, spec, env: make_ensemble(cfg, spec),
    "probabilistic ensemble of Gaussian MLPs (PETS)",
)
register_model(
    "oracle",
    OracleConfig,
    _build_oracle,
    "the true MuJoCo simulator (reacher, pusher): the planner's ceiling",
    needs_env=True,
)
