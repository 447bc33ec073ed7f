"""Tasks: gymnasium MuJoCo arms by short name, with pure-JAX reward and termination functions."""

from prototypes.envs.registry import ALL_TASKS, FETCH_TASKS, TASKS, EnvSpec, get_spec, make

__all__ = ["TASKS", "FETCH_TASKS", "ALL_TASKS", "EnvSpec", "get_spec", "make"]
