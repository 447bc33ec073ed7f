"""Known answers for the Sutton & Barto mazes: layouts, transitions, walls, shortest paths."""

import pytest

from prototypes.envs.maze import (
    DOWN,
    LEFT,
    MAZE_NAMES,
    NUM_ACTIONS,
    RIGHT,
    UP,
    Maze,
    make_maze,
    render,
    shortest_path_length,
    step,
    to_cell,
    to_state,
    walls_at,
)

# The layouts as drawn in the book's Figures 8.2, 8.4 and 8.5 (and in maze.py's docstring).
DYNA = """\
.......#G
..#....#.
S.#....#.
..#......
.....#...
........."""
RIGHT_GAP = """\
........G
.........
.........
########.
.........
...S....."""
LEFT_GAP = RIGHT_GAP.replace("########.", ".########")
BOTH_GAPS = RIGHT_GAP.replace("########.", ".#######.")


def test_layouts_match_the_book():
    assert render(make_maze("dyna")) == DYNA
    assert render(make_maze("dyna"), t=10**6) == DYNA  # static
    blocking = make_maze("blocking")
    assert render(blocking, t=0) == RIGHT_GAP and render(blocking, t=999) == RIGHT_GAP
    assert render(blocking, t=1000) == LEFT_GAP
    shortcut = make_maze("shortcut")
    assert render(shortcut, t=0) == LEFT_GAP and render(shortcut, t=2999) == LEFT_GAP
    assert render(shortcut, t=3000) == BOTH_GAPS


def test_dyna_maze_cells():
    maze = make_maze("dyna")
    assert (maze.height, maze.width, maze.num_states) == (6, 9, 54)
    assert maze.start == (2, 0) and maze.goal == (0, 8)
    assert maze.walls == {(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)}
    assert maze.start_state == 18 and maze.goal_state == 8  # row * 9 + col


@pytest.mark.parametrize(
    "cell, action, expected",
    [
        ((2, 0), UP, (1, 0)),
        ((2, 0), DOWN, (3, 0)),
        ((2, 0), LEFT, (2, 0)),  # off the grid: stay
        ((2, 0), RIGHT, (2, 1)),
        ((2, 1), RIGHT, (2, 1)),  # (2, 2) is a wall
        ((0, 6), RIGHT, (0, 6)),  # (0, 7) is a wall
        ((5, 5), UP, (5, 5)),  # (4, 5) is a wall
        ((4, 4), RIGHT, (4, 4)),  # (4, 5) is a wall
        ((5, 8), DOWN, (5, 8)),  # bottom edge
        ((3, 7), UP, (3, 7)),  # (2, 7) is a wall
        ((3, 7), RIGHT, (3, 8)),
        ((0, 0), UP, (0, 0)),  # top edge
    ],
)
def test_dyna_maze_transitions(cell, action, expected):
    maze = make_maze("dyna")
    nxt, reward, done = step(maze, to_state(maze, cell), action)
    assert to_cell(maze, nxt) == expected
    assert reward == 0.0 and not done


def test_reaching_the_goal_pays_one_and_ends():
    maze = make_maze("dyna")
    assert step(maze, to_state(maze, (1, 8)), UP) == (maze.goal_state, 1.0, True)
    # (0, 7) is a wall, so the goal can only be entered from below.
    assert step(maze, to_state(maze, (0, 6)), RIGHT) == (to_state(maze, (0, 6)), 0.0, False)


def test_hand_written_optimal_path_takes_14_steps():
    # D D R R R U R R R R R U U U: (2,0) (3,0) (4,0) (4,1) (4,2) (4,3) (3,3) (3,4) ... (3,8)
    # (2,8) (1,8) (0,8): under the wall column at col 2, over (4,5), round the col-7 wall.
    maze = make_maze("dyna")
    path = [DOWN, DOWN, RIGHT, RIGHT, RIGHT, UP, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT, UP, UP, UP]
    s, rewards, dones = maze.start_state, [], []
    for a in path:
        s, r, d = step(maze, s, a)
        rewards.append(r)
        dones.append(d)
    assert s == maze.goal_state
    assert rewards == [0.0] * 13 + [1.0] and dones == [False] * 13 + [True]


def test_shortest_paths_by_bfs():
    assert shortest_path_length(make_maze("dyna")) == 14
    # Blocking: right of the barrier 5 right + 5 up = 10; then left: 3 left + 5 up + 8 right = 16.
    blocking = make_maze("blocking")
    assert shortest_path_length(blocking, 0) == 10 and shortest_path_length(blocking, 1000) == 16
    shortcut = make_maze("shortcut")
    assert shortest_path_length(shortcut, 0) == 16 and shortest_path_length(shortcut, 3000) == 10
    closed = Maze(2, 2, start=(0, 0), goal=(1, 1), walls=frozenset({(0, 1), (1, 0)}),
                  walls_after=frozenset({(0, 1), (1, 0)}))
    assert shortest_path_length(closed) == -1


def test_walls_switch_at_the_configured_step():
    blocking = make_maze("blocking")
    below_right, below_left = to_state(blocking, (4, 8)), to_state(blocking, (4, 0))
    assert to_cell(blocking, step(blocking, below_right, UP, t=999)[0]) == (3, 8)
    assert to_cell(blocking, step(blocking, below_right, UP, t=1000)[0]) == (4, 8)
    assert to_cell(blocking, step(blocking, below_left, UP, t=999)[0]) == (4, 0)
    assert to_cell(blocking, step(blocking, below_left, UP, t=1000)[0]) == (3, 0)
    shortcut = make_maze("shortcut")
    assert to_cell(shortcut, step(shortcut, below_right, UP, t=2999)[0]) == (4, 8)
    assert to_cell(shortcut, step(shortcut, below_right, UP, t=3000)[0]) == (3, 8)
    assert to_cell(shortcut, step(shortcut, below_left, UP, t=3000)[0]) == (3, 0)  # still open
    early = make_maze("shortcut", switch_step=5)
    assert walls_at(early, 4) == early.walls and walls_at(early, 5) == early.walls_after
    assert walls_at(early, 5) == make_maze("shortcut").walls_after


def test_an_agent_on_a_new_wall_can_leave_it():
    blocking = make_maze("blocking")
    on_wall = to_state(blocking, (3, 8))
    assert to_cell(blocking, step(blocking, on_wall, UP, t=1000)[0]) == (2, 8)


def test_state_cell_round_trip():
    maze = make_maze("dyna")
    for s in range(maze.num_states):
        assert to_state(maze, to_cell(maze, s)) == s
    assert NUM_ACTIONS == 4 and MAZE_NAMES == ("dyna", "blocking", "shortcut")


def test_bad_mazes_are_refused():
    with pytest.raises(ValueError, match="unknown maze"):
        make_maze("spiral")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="static"):
        make_maze("dyna", switch_step=10)
    with pytest.raises(ValueError, match="is a wall cell"):
        Maze(3, 3, start=(0, 0), goal=(2, 2), walls=frozenset({(0, 0)}),
             walls_after=frozenset())
    with pytest.raises(ValueError, match="outside"):
        Maze(3, 3, start=(0, 0), goal=(3, 2), walls=frozenset(), walls_after=frozenset())
    with pytest.raises(ValueError, match="action must be"):
        step(make_maze("dyna"), 18, 4)
