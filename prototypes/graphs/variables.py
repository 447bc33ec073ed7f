"""Discrete random variables of a factor graph.

A variable is a name and a cardinality (its states are 0 .. cardinality - 1), optionally with
state names (kept for pgmpy interchange and for evidence given by state name).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

__all__ = ["Variable"]


@dataclass(frozen=True)
class Variable:
    """A discrete variable.

    Attributes:
        name: unique name within a graph.
        cardinality: number of states (>= 1); states are the integers 0 .. cardinality - 1.
        state_names: optional labels for the states, one per state, all distinct.
    """

    name: str  # unique within a graph
    cardinality: int  # number of states, >= 1
    state_names: tuple[Hashable, ...] | None = None  # optional labels, one per state

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"variable name must be a non-empty str, got {self.name!r}")
        card = self.cardinality
        if isinstance(card, bool) or not isinstance(card, int | np.integer) or card < 1:
            raise ValueError(
                f"variable {self.name!r} has cardinality {card!r}; allowed: an int >= 1"
            )
        object.__setattr__(self, "cardinality", int(card))
        if self.state_names is not None:
            names = tuple(self.state_names)
            if len(names) != card or len(set(names)) != card:
                raise ValueError(
                    f"variable {self.name!r} has state_names {names!r}; allowed: {card} "
                    "distinct labels"
                )
            object.__setattr__(self, "state_names", names)

    def state_index(self, value: Hashable) -> int:
        """The integer state of `value` (an int state, or one of `state_names`).

        Raises:
            ValueError: if `value` is not a state of this variable.
        """
        if self.state_names is not None and value in self.state_names:
            return self.state_names.index(value)
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            if 0 <= value < self.cardinality:
                return int(value)
        if isinstance(value, np.generic):
            value = value.item()  # print 3, not np.int64(3)
        allowed = f"0..{self.cardinality - 1}"
        if self.state_names is not None:
            allowed += f" or one of {list(self.state_names)}"
        raise ValueError(
            f"evidence for variable {self.name!r} is {value!r}; allowed states are {allowed}"
        )
