"""World models by kind: one place that knows every model, its config class and how to build it.

>>> cfg = model_config("ensemble")()            # the kind's config class, at its defaults
>>> model = make_model("ensemble", cfg, get_spec("reacher"))

A new world model is its own module plus one `register_model` line (below, for the built-in
kinds; anywhere before the experiment parses its flags, for a model of your own, e.g. in a test):

    register_model("toy", ToyConfig, lambda cfg, spec, env: make_toy(cfg, spec), "a toy model")

The build function is `(cfg, spec, env) -> WorldModel`. `env` is the live gymnasium env of the
task, passed only to kinds registered with `needs_env=True` (the oracle reads the simulator's
physics from it); learned models never see it. A kind registered with `codebook=True` is a
discrete model that only knows a finite set of actions (the planner's codebook, `[K, A]`): its
build function gets it as a fourth argument, `codebook=`, and experiments explore with its rows.
`tasks` limits a kind to the tasks it can model. `check_model` says, in one line, why a kind
cannot run where an experiment would put it.

Experiments read `model_kinds()` for `--model KIND` and the kind's config class for its
`--model.<field>` flags, so registering a kind is all it takes to run it under every experiment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, is_dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from prototypes.config import arg, check
from prototypes.envs import fetch
from prototypes.envs.registry import ALL_TASKS, EnvSpec, get_spec
from prototypes.models.abstraction import make_abstract_model
from prototypes.models.base import WorldModel
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.models.factored import FactoredModelConfig, make_factored_model, state_to_dbn
from prototypes.models.schema import SchemaModelConfig, make_schema_model
from prototypes.models.structured import (
    StructuredConfig,
    check_structured_task,
    make_structured,
    tasks_with_layout,
)

__all__ = [
    "ModelKind",
    "OracleConfig",
    "FactoredGridConfig",
    "register_model",
    "unregister_model",
    "model_kinds",
    "get_model_kind",
    "model_config",
    "make_model",
    "check_model",
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
        needs_env: the model needs the live env (simulator-backed models); its planning state
            is more than the observation, so it cannot branch rollouts from stored data.
        tasks: the tasks it can model (None: every task).
        codebook: a discrete model over the planner's codebook rows (module docstring).
        check_task: (cfg, spec) -> None, raising ValueError (one line) when this config cannot
            model that task (a setting the task lacks what it needs for); None: any config can.
    """

    name: str
    config: type
    build: BuildFn
    help: str
    needs_env: bool = False
    tasks: tuple[str, ...] | None = None
    codebook: bool = False
    check_task: Callable[[Any, EnvSpec], None] | None = None


_KINDS: dict[str, ModelKind] = {}


def register_model(
    name: str,
    config: type,
    build: BuildFn,
    help: str,
    *,
    needs_env: bool = False,
    tasks: tuple[str, ...] | None = None,
    codebook: bool = False,
    check_task: Callable[[Any, EnvSpec], None] | None = None,
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
    kind = ModelKind(
        name=name,
        config=config,
        build=build,
        help=help,
        needs_env=needs_env,
        tasks=tasks,
        codebook=codebook,
        check_task=check_task,
    )
    _KINDS[name] = kind
    return kind


def unregister_model(name: str) -> None:
    """Remove kind `name` (a kind a test or a notebook registered); unknown names are ignored."""
    _KINDS.pop(name, None)


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


def make_model(
    kind: str,
    cfg: Any | None,
    spec: EnvSpec,
    env: gym.Env | None = None,
    *,
    codebook: np.ndarray | None = None,
) -> WorldModel:
    """Build the world model of kind `kind` for task `spec`.

    Args:
        kind: a registered name (`model_kinds()`).
        cfg: an instance of the kind's config class, or None for its defaults.
        spec: the task.
        env: the live env; required by kinds registered with `needs_env`, ignored otherwise.
        codebook: [K, A] the planner's discrete actions; required by kinds registered with
            `codebook=True`, ignored otherwise.

    Raises:
        ValueError: unknown kind, a config of another kind's class, a task the kind cannot
            model, or a missing env or codebook.
    """
    entry = get_model_kind(kind)
    cfg = entry.config() if cfg is None else cfg
    if not isinstance(cfg, entry.config):
        raise ValueError(
            f"model {kind!r} takes a config of class {entry.config.__name__}, "
            f"got {type(cfg).__name__}"
        )
    if entry.tasks is not None and spec.name not in entry.tasks:
        raise ValueError(
            f"model {kind!r} exists for {', '.join(entry.tasks)} only, got task {spec.name!r}"
        )
    if entry.needs_env and env is None:
        raise ValueError(f"model {kind!r} needs the live env of task {spec.name!r}: pass env=")
    if entry.codebook:
        if codebook is None:
            raise ValueError(f"model {kind!r} plans over a codebook of actions: pass codebook=")
        return entry.build(cfg, spec, env if entry.needs_env else None, codebook=codebook)
    return entry.build(cfg, spec, env if entry.needs_env else None)


def check_model(
    kind: str,
    cfg: Any,
    task: str,
    *,
    codebook_planner: bool = False,
    rollouts_from_data: bool = False,
    num_envs: int = 1,
) -> None:
    """Raise `ConfigError` (one line) unless kind `kind` with `cfg` can run on `task` here.

    Args:
        kind, cfg: the model's kind and config (an instance of the kind's config class).
        task: the task's short name.
        codebook_planner: the planner picks among codebook rows (MCTS); otherwise it proposes
            continuous actions, which a codebook kind cannot take.
        rollouts_from_data: the experiment branches model rollouts from stored observations
            (Dyna), which a simulator-backed kind (`needs_env`) cannot start from.
        num_envs: environments planned in one batched call; a simulator-backed kind reads one
            live env, so it takes 1 only.
    """
    check(kind in _KINDS, f"unknown model {kind!r}: choose from {', '.join(model_kinds())}")
    entry = _KINDS[kind]
    check(
        isinstance(cfg, entry.config),
        f"model {kind!r} takes a config of class {entry.config.__name__}, got {type(cfg).__name__}",
    )
    check(
        entry.tasks is None or task in entry.tasks,
        f"model {kind!r} exists for {', '.join(entry.tasks or ())} only, got env {task!r}",
    )
    check(
        codebook_planner or not entry.codebook,
        f"model {kind!r} only takes codebook actions; this experiment plans continuous "
        "actions (use experiments/mcts.py)",
    )
    check(
        not (rollouts_from_data and entry.needs_env),
        f"model {kind!r} needs the live simulator state, so it cannot branch rollouts from "
        "stored observations",
    )
    if entry.check_task is not None and task in ALL_TASKS:
        try:
            entry.check_task(cfg, get_spec(task))
        except ValueError as e:
            check(False, str(e))
    check(num_envs >= 1, f"num_envs must be >= 1, got {num_envs}")
    check(
        num_envs == 1 or not entry.needs_env,
        f"num_envs {num_envs}: model {kind!r} reads one live env, so it plans one env at a "
        "time (num_envs 1)",
    )


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
    "the true MuJoCo simulator: the planner's ceiling",
    needs_env=True,
    tasks=("reacher", "pusher", "fetch_reach", "fetch_push"),
)


@dataclass(frozen=True)
class FactoredGridConfig:
    factored: FactoredModelConfig = arg(
        FactoredModelConfig(max_parents=2, score="bdeu", backoff=1), "the learned DBN"
    )
    grid: fetch.GridConfig = arg(fetch.GridConfig(), "cells of the goal offset")


def _build_factored_grid(
    cfg: FactoredGridConfig, spec: EnvSpec, env: gym.Env | None, *, codebook: np.ndarray
) -> WorldModel:
    """A factored DBN over grid cells of the goal offset, behind the continuous task
    (prototypes/envs/fetch.py for the abstraction, models/abstraction.py for the wrapper)."""
    grid_spec = fetch.grid_spec(spec.name, cfg.grid, len(codebook))
    abstract = functools.partial(fetch.grid_encode, spec.name, cfg.grid)
    model = make_abstract_model(make_factored_model(cfg.factored, grid_spec), abstract, codebook)

    def summary(state: Any) -> dict:
        """The learned parent sets, 'child<-parent,parent; ...'."""
        dbn = state_to_dbn(grid_spec, state)
        names = grid_spec.input_names
        parents = "; ".join(
            f"{child}<-{','.join(names[p] for p in ps)}"
            for child, ps in zip(grid_spec.names, dbn.parents, strict=True)
        )
        return {"model/parents": parents}

    return replace(model, summary=summary)


register_model(
    "factored",
    FactoredGridConfig,
    _build_factored_grid,
    "a learned factored DBN over grid cells of the goal offset (fetch_reach; codebook actions)",
    tasks=fetch.GRID_TASKS,
    codebook=True,
)
register_model(
    "structured",
    StructuredConfig,
    lambda cfg, spec, env: make_structured(cfg, spec),
    "probabilistic ensemble of object-factored graph networks over the task's entities",
    tasks=tasks_with_layout(),
    check_task=check_structured_task,
)


def _build_schema(cfg: SchemaModelConfig, spec: EnvSpec, env: gym.Env | None) -> WorldModel:
    """Learned schemas over the multi-block arm's entity grid (models/schema.py)."""
    from prototypes.envs.discrete_arm import arm_schema_spec  # MuJoCo env module: on demand

    return make_schema_model(cfg, spec, arm_schema_spec())


register_model(
    "schema",
    SchemaModelConfig,
    _build_schema,
    "lifted AND/OR schemas over the entity grid, most likely next state (push_arm)",
    tasks=("push_arm",),
)
