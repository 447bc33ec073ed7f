"""Planners over a StepFn: random shooting, CEM, MPPI (MCTS lives in mcts.py when present).

graph_planner.py plans by max-product inference on a DBN's tables instead of a StepFn.
"""

from prototypes.envs.registry import EnvSpec
from prototypes.planning.base import Planner, PlannerConfig, PlanState, evaluate_sequences
from prototypes.planning.cem import make_cem
from prototypes.planning.mppi import make_mppi
from prototypes.planning.shooting import make_random_shooting

__all__ = [
    "Planner",
    "PlannerConfig",
    "PlanState",
    "evaluate_sequences",
    "make_planner",
    "make_cem",
    "make_mppi",
    "make_random_shooting",
]


def make_planner(cfg: PlannerConfig, spec: EnvSpec) -> Planner:
    """The planner named by `cfg.kind`."""
    factories = {"cem": make_cem, "mppi": make_mppi, "random": make_random_shooting}
    return factories[cfg.kind](cfg, spec)
