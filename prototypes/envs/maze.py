"""Deterministic gridworld mazes of Sutton & Barto (2nd ed.), Examples 8.1-8.3.

A maze is a `height x width` grid. A state is the flat index `row * width + col` of a cell (row 0
is the top row). There are four actions, `UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3`. A move into a wall
or off the grid leaves the agent where it is. Reaching the goal gives reward 1 and ends the
episode (the next episode starts again at S); every other transition gives reward 0. The book
uses discount 0.95 for all three tasks (a property of the agent here, `DynaQConfig.gamma`).

Layouts (`#` wall, `S` start, `G` goal; rows top to bottom, columns left to right, 0-based):

Example 8.1, the Dyna maze (`"dyna"`, Figure 8.2), S = (2, 0), G = (0, 8), walls at (1, 2),
(2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7); the shortest path takes 14 steps::

    .......#G
    ..#....#.
    S.#....#.
    ..#......
    .....#...
    .........

Example 8.2, the blocking maze (`"blocking"`, Figure 8.4), S = (5, 3), G = (0, 8). For the
first 1000 time steps a barrier fills row 3 except its rightmost cell, so the short path (10
steps) passes to the right of it; from step 1000 on the barrier fills row 3 except its leftmost
cell, blocking that path and opening a longer one (16 steps) on the left::

    steps 0-999      steps 1000-
    ........G        ........G
    .........        .........
    .........        .........
    ########.        .########
    .........        .........
    ...S.....        ...S.....

Example 8.3, the shortcut maze (`"shortcut"`, Figure 8.5), S = (5, 3), G = (0, 8). For the
first 3000 time steps the only way round the barrier is on the left (16 steps); from step 3000
on the rightmost cell of the barrier opens as well, a shortcut of 10 steps, while the long path
stays open::

    steps 0-2999     steps 3000-
    ........G        ........G
    .........        .........
    .........        .........
    .########        .#######.
    .........        .........
    ...S.....        ...S.....

"Time step" counts real environment steps since the start of the run, across episodes: the
layout in force for a step is `walls_at(maze, t)`, where `t` is the number of steps already
taken. The barrier row (row 3, the fourth from the top, with two free rows below it and S in the
bottom row) follows the book's figures as reproduced by the common reference implementations.
When the walls change, an agent standing on a cell that becomes a wall (possible only at (3, 8)
in the blocking maze) stays there and can still move out: walls only stop moves *into* a cell.

Everything here is pure Python on small integers: the tabular agents take one step at a time,
where array libraries would only add overhead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "UP",
    "DOWN",
    "LEFT",
    "RIGHT",
    "NUM_ACTIONS",
    "ACTION_NAMES",
    "MAZE_NAMES",
    "MazeName",
    "Cell",
    "Maze",
    "make_maze",
    "to_state",
    "to_cell",
    "walls_at",
    "step",
    "shortest_path_length",
    "render",
]

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
NUM_ACTIONS = 4
ACTION_NAMES = ("up", "down", "left", "right")
_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (d_row, d_col) per action

MazeName = Literal["dyna", "blocking", "shortcut"]
MAZE_NAMES: tuple[str, ...] = ("dyna", "blocking", "shortcut")

Cell = tuple[int, int]  # (row, col), row 0 at the top


@dataclass(frozen=True)
class Maze:
    """A deterministic gridworld whose walls may change once, at time step `switch_step`.

    Attributes:
        height: number of rows.
        width: number of columns.
        start: the start cell S.
        goal: the goal cell G (terminal; reaching it gives reward 1).
        walls: wall cells in force before `switch_step`.
        walls_after: wall cells from `switch_step` on (equal to `walls` for a static maze).
        switch_step: the first time step (real steps taken since the start of the run) that uses
            `walls_after`; `None` for a static maze.
    """

    height: int
    width: int
    start: Cell
    goal: Cell
    walls: frozenset[Cell]
    walls_after: frozenset[Cell]
    switch_step: int | None = None

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"maze size must be positive, got {self.height}x{self.width}")
        for name, cell in (("start", self.start), ("goal", self.goal)):
            if not self.inside(cell):
                raise ValueError(f"{name} {cell} is outside the {self.height}x{self.width} grid")
            if cell in self.walls or cell in self.walls_after:
                raise ValueError(f"{name} {cell} is a wall cell")
        if self.start == self.goal:
            raise ValueError(f"start and goal are the same cell {self.start}")
        for cell in self.walls | self.walls_after:
            if not self.inside(cell):
                raise ValueError(f"wall {cell} is outside the {self.height}x{self.width} grid")
        if self.switch_step is not None and self.switch_step < 0:
            raise ValueError(f"switch_step must be >= 0 or None, got {self.switch_step}")

    def inside(self, cell: Cell) -> bool:
        """Whether `cell` lies on the grid."""
        return 0 <= cell[0] < self.height and 0 <= cell[1] < self.width

    @property
    def num_states(self) -> int:
        """Number of cells (walls included, so a state is just a flat cell index)."""
        return self.height * self.width

    @property
    def start_state(self) -> int:
        """Flat index of S."""
        return to_state(self, self.start)

    @property
    def goal_state(self) -> int:
        """Flat index of G."""
        return to_state(self, self.goal)


def _row(row: int, cols: range) -> frozenset[Cell]:
    return frozenset((row, c) for c in cols)


def make_maze(name: MazeName, *, switch_step: int | None = None) -> Maze:
    """One of the book's mazes (layouts in the module docstring).

    Args:
        name: `"dyna"` (Example 8.1), `"blocking"` (Example 8.2) or `"shortcut"` (Example 8.3).
        switch_step: override the step at which the walls change (book: 1000 for blocking,
            3000 for shortcut); not allowed for the static Dyna maze.

    Raises:
        ValueError: unknown name, or a switch step for the static maze.
    """
    if name == "dyna":
        if switch_step is not None:
            raise ValueError("the dyna maze is static: switch_step must be None")
        walls = frozenset({(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)})
        return Maze(6, 9, start=(2, 0), goal=(0, 8), walls=walls, walls_after=walls)
    if name == "blocking":
        return Maze(6, 9, start=(5, 3), goal=(0, 8), walls=_row(3, range(0, 8)),
                    walls_after=_row(3, range(1, 9)),
                    switch_step=1000 if switch_step is None else switch_step)
    if name == "shortcut":
        return Maze(6, 9, start=(5, 3), goal=(0, 8), walls=_row(3, range(1, 9)),
                    walls_after=_row(3, range(1, 8)),
                    switch_step=3000 if switch_step is None else switch_step)
    raise ValueError(f"unknown maze {name!r}; choose one of {', '.join(MAZE_NAMES)}")


def to_state(maze: Maze, cell: Cell) -> int:
    """Flat state index of `cell`."""
    return cell[0] * maze.width + cell[1]


def to_cell(maze: Maze, state: int) -> Cell:
    """The (row, col) cell of flat state index `state`."""
    return divmod(int(state), maze.width)


def walls_at(maze: Maze, t: int) -> frozenset[Cell]:
    """The wall cells in force for a step taken when `t` real steps have already been taken."""
    if maze.switch_step is not None and t >= maze.switch_step:
        return maze.walls_after
    return maze.walls


def step(maze: Maze, state: int, action: int, t: int = 0) -> tuple[int, float, bool]:
    """Take `action` in `state`, the `t`-th real step of the run (0-based).

    Args:
        maze: the maze.
        state: flat index of the current (non-goal) cell.
        action: one of UP, DOWN, LEFT, RIGHT.
        t: number of real steps taken before this one (selects the wall layout).

    Returns:
        `(next_state, reward, done)`: reward is 1.0 and done True exactly when next_state is G.
    """
    if not 0 <= action < NUM_ACTIONS:
        raise ValueError(f"action must be in 0..{NUM_ACTIONS - 1}, got {action}")
    row, col = divmod(int(state), maze.width)
    d_row, d_col = _MOVES[action]
    nxt = (row + d_row, col + d_col)
    if not maze.inside(nxt) or nxt in walls_at(maze, t):
        nxt = (row, col)
    done = nxt == maze.goal
    return to_state(maze, nxt), (1.0 if done else 0.0), done


def shortest_path_length(maze: Maze, t: int = 0) -> int:
    """Fewest steps from S to G with the walls in force at time `t` (breadth-first search).

    Returns:
        The number of steps, or -1 if G cannot be reached.
    """
    walls = walls_at(maze, t)
    dist = {maze.start: 0}
    queue = deque([maze.start])
    while queue:
        cell = queue.popleft()
        if cell == maze.goal:
            return dist[cell]
        for d_row, d_col in _MOVES:
            nxt = (cell[0] + d_row, cell[1] + d_col)
            if maze.inside(nxt) and nxt not in walls and nxt not in dist:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return -1


def render(maze: Maze, t: int = 0) -> str:
    """The layout at time `t` as text: one line per row, `#` wall, `S`, `G`, `.` free."""
    walls = walls_at(maze, t)
    lines = []
    for r in range(maze.height):
        chars = []
        for c in range(maze.width):
            cell = (r, c)
            chars.append("S" if cell == maze.start else "G" if cell == maze.goal
                         else "#" if cell in walls else ".")
        lines.append("".join(chars))
    return "\n".join(lines)
