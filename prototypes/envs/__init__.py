"""Tasks: gymnasium MuJoCo arms by short name, with pure-JAX reward and termination functions."""

from prototypes.envs.registry import TASKS, EnvSpec, get_spec, make

__all__ = ["TASKS", "EnvSpec", "get_spec", "make"]
