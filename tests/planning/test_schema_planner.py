"""Max-product planning on schema networks: the exact grounded step against schema_world.step,
hand-derived plans and relaxed reward times, plan values against enumeration of every action
sequence, frozen literals, the target reward, and bad input."""

import functools

import numpy as np
import pytest

from prototypes.envs.discrete_arm import (
    LAYOUTS,
    arm_rules,
    covered_goals,
    grid_state,
    push_next,
    solve_steps,
)
from prototypes.envs.schema_world import push_world, sample_states, step
from prototypes.planning.schema_planner import (
    NEVER,
    SchemaPlannerConfig,
    best_first,
    brute_force_value,
    compile_rules,
    make_schema_planner,
    plan_search,
    search,
    solve,
)

GAMMA = 0.95
STAY, UP, DOWN, LEFT, RIGHT = range(5)  # push_world's actions
GRIPPER, BLOCK, WALL, GOAL = range(4)  # push_world's attributes


def _push_state(shape, grip, blocks, goals, walls=()):
    s = np.zeros((*shape, 4), bool)
    s[(*grip, GRIPPER)] = True
    for cells, k in ((blocks, BLOCK), (goals, GOAL), (walls, WALL)):
        for cell in cells:
            s[(*cell, k)] = True
    return s


@functools.cache
def _planner(horizon: int, depth: int = 1):
    spec, rules = push_world()
    return make_schema_planner(spec, rules, SchemaPlannerConfig(horizon=horizon, depth=depth))


def _host_step(x, a):
    spec, rules = push_world()
    nxt, r = step(spec, rules, x[None], np.array([a]))
    return nxt[0], bool(r[0])


def test_compiled_rules_by_hand():
    spec, rules = push_world()
    c = compile_rules(spec, rules)
    # 24 attribute schemas + 4 reward schemas + the never-holding dummy
    assert c.literals.shape == (29, 2 * 13 * 4) and c.events.shape == (29, 9)
    # the first on:gripper schema (direction up): gripper@(1,0)=1, wall@0=0, block@0=0 and
    # the action: 3 state literals, one action, event column 2 * 0 = 0
    assert c.literals[0].sum() == 3 and c.actions[0].tolist() == [False, True, False, False, False]
    assert c.events[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert not c.actions[-1].any() and not c.events[-1].any()  # the dummy never holds or fires


@pytest.mark.slow  # jit compiles of the grounded graph: seconds on 2 busy cores
def test_exact_step_agrees_with_schema_world_step():
    spec, rules = push_world()
    planner = _planner(3)
    states = sample_states(spec, np.random.default_rng(0), 6, (5, 5), (0.2, 0.3, 0.2, 0.2))
    for s in states:
        for a in range(5):
            nxt, r = planner.step(s, a)
            ref, ref_r = _host_step(s, a)
            np.testing.assert_array_equal(np.asarray(nxt), ref)
            assert bool(r) == ref_r


@pytest.mark.slow
def test_straight_push_relaxed_time_and_plan_by_hand():
    # one row: gripper at 0, block at 1, goal at 4; three pushes right put the block on the goal,
    # the reward fires on the third transition (index 2); nothing is faster, so the relaxed
    # messages are exact here: first_reward = 2, the plan is right x 3, value gamma^2
    s = _push_state((1, 5), (0, 0), [(0, 1)], [(0, 4)])
    planner = _planner(4)
    frozen = np.zeros_like(s)
    assert int(planner.first_reward(s, frozen)) == 2
    actions, rewards, value = planner.plan(s, frozen)
    assert np.asarray(actions)[:3].tolist() == [RIGHT] * 3
    assert np.asarray(rewards).tolist()[:3] == [False, False, True]
    assert float(value) == pytest.approx(GAMMA**2, rel=1e-6)
    assert plan_search(planner, s, frozen)[0] == [RIGHT] * 3


@pytest.mark.parametrize(
    "grip, blocks, goals, walls, steps",
    [
        # gripper must step down beside the block first: down, right, right (3 steps)
        ((0, 0), [(1, 1)], [(1, 3)], [], 3),
        # a wall at (1, 1) keeps the gripper in the bottom row: right, right, then push up
        ((2, 0), [(1, 2)], [(0, 2)], [(1, 1)], 3),
    ],
)
@pytest.mark.slow
def test_plan_value_equals_enumeration_of_every_action_sequence(grip, blocks, goals, walls, steps):
    s = _push_state((3, 4), grip, blocks, goals, walls)
    horizon = 5
    planner = _planner(horizon)
    frozen = np.zeros_like(s)
    best, _ = brute_force_value(_host_step, s, 5, horizon, GAMMA)
    assert best == pytest.approx(GAMMA ** (steps - 1))  # hand-derived: reward on transition `steps`
    _, _, value = planner.plan(s, frozen)
    assert float(value) == pytest.approx(best, rel=1e-6)
    actions, rewards = plan_search(planner, s, frozen)
    first = rewards.index(True)
    assert GAMMA**first == pytest.approx(best, rel=1e-6)


@pytest.mark.slow  # jit compiles of the grounded graph: seconds on 2 busy cores
def test_relaxed_reward_time_is_a_lower_bound_on_the_true_one():
    # on random 3 x 3 worlds: the relaxed messages over-approximate what is reachable, so the
    # first step at which they allow the reward is never later than enumeration's first reward
    spec, rules = push_world()
    planner = _planner(4)
    rng = np.random.default_rng(3)
    checked = 0
    for s in sample_states(spec, rng, 40, (3, 3), (0.15, 0.35, 0.15, 0.3)):
        best, _ = brute_force_value(_host_step, s, 5, 4, GAMMA)
        h = int(planner.first_reward(s, np.zeros_like(s)))
        if best > 0:  # the reward is reachable: first at t = log_gamma(best) at the latest
            t_true = int(round(np.log(best) / np.log(GAMMA)))
            assert h <= t_true
            checked += 1
    assert checked >= 5


@pytest.mark.slow  # jit compiles of the grounded graph: seconds on 2 busy cores
def test_frozen_literals_are_never_changed():
    # a block on a goal at (0, 2) is frozen; pushing it right (onto the other goal) is refused
    s = _push_state((1, 5), (0, 1), [(0, 2)], [(0, 2), (0, 3)])
    planner = _planner(3)
    frozen = np.zeros_like(s)
    frozen[0, 2, BLOCK] = True
    values, _ = planner.action_values(s, frozen)
    assert float(values[RIGHT]) == -1.0
    values, _ = planner.action_values(s, np.zeros_like(s))
    assert float(values[RIGHT]) >= 1.0  # unfrozen: the reward now (t = 0), plus later ones
    assert search(planner, s, frozen)[1] == "none"


@pytest.mark.slow
def test_target_reward_on_the_arm_rules():
    # 5 x 5 arm grid, walls on the border: gripper (3, 1), block (2, 2), goal (1, 2). Pushing
    # up needs the gripper at (3, 2): one step +x, then one push -y: the block arrives on
    # transition 2 (index 1)
    spec, rules = arm_rules()
    walls = np.ones((5, 5), bool)
    walls[1:-1, 1:-1] = False
    s = grid_state(walls, (3, 1), [(2, 2)], [(1, 2)])
    planner = make_schema_planner(
        spec, rules, SchemaPlannerConfig(horizon=4), target=(("block", 1), ("goal", 1))
    )
    frozen = np.zeros_like(s)
    assert int(planner.first_reward(s, frozen)) == 1
    actions, rewards = plan_search(planner, s, frozen)
    assert actions == [0, 3] and rewards == [False, True]  # +x, -y
    x = s
    for a in actions:  # the plan works in the task's own exact dynamics too
        x = push_next(x, a)
    assert x[1, 2, 1] and x[1, 2, 3]


def test_bad_target_is_named():
    spec, rules = arm_rules()
    with pytest.raises(ValueError, match="unknown attribute 'colour'"):
        make_schema_planner(spec, rules, target=(("colour", 1),))
    with pytest.raises(ValueError, match="value 2 is out of range"):
        make_schema_planner(spec, rules, target=(("block", 2),))
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        SchemaPlannerConfig(horizon=0)


@pytest.mark.slow
def test_solve_finds_the_shortest_plan_that_covers_every_goal():
    # the exact search on the true arm schemas against discrete_arm.solve_steps (a BFS over
    # gripper cell and block set, written separately on push_next) on two-block placements of
    # the training map; the plan, replayed with push_next, covers both goals
    spec, rules = arm_rules()
    planner = make_schema_planner(
        spec, rules, SchemaPlannerConfig(horizon=4), target=(("block", 1), ("goal", 1))
    )
    walls = LAYOUTS["train"].walls
    for grip, blocks, goals in (
        ((2, 1), [(2, 2), (5, 5)], [(2, 4), (5, 4)]),  # two straight pushes and a walk
        ((6, 6), [(2, 2), (2, 5)], [(2, 3), (1, 6)]),  # the second block pushed up, then right
    ):
        s = grid_state(walls, grip, blocks, goals)
        actions, expanded = solve(planner, s, want=2)
        assert len(actions) == solve_steps(walls, grip, blocks, goals) and expanded > 0
        x = s
        for a in actions:
            x = push_next(x, a)
        assert covered_goals(x) == 2
    # a block walled into the corner (1, 1): the goal (5, 5) is out of reach: nothing found
    s = grid_state(walls, (2, 2), [(1, 1)], [(5, 5)])
    assert solve(planner, s, want=1, max_nodes=10_000)[0] == []
    assert solve(planner, grid_state(walls, (2, 1), [(2, 2)], [(2, 2)]), want=1) == ([], 0)
    with pytest.raises(ValueError, match="solve needs a planner with a target"):
        solve(_planner(2), _push_state((4, 4), (1, 1), [], []), want=1)


# --- best_first: search on the exact graph guided by the relaxed messages ------------------------

ARM_TARGET = (("block", 1), ("goal", 1))


@functools.cache
def _arm_planner():
    spec, rules = arm_rules()
    return make_schema_planner(spec, rules, SchemaPlannerConfig(horizon=4), target=ARM_TARGET)


def _open_walls(w: int) -> np.ndarray:
    walls = np.ones((w, w), bool)
    walls[1:-1, 1:-1] = False
    return walls


@pytest.mark.slow  # compiles target_times, heuristic(s), children (seconds on 2 busy cores)
def test_target_times_and_heuristic_by_hand():
    # 7 x 7 arm map, walls on the border; gripper (1, 2), block (1, 3) against the top wall,
    # goals (1, 5) and (3, 3). Two pushes +x put the block on (1, 5), and the relaxed messages
    # allow nothing sooner: time 2. No block can ever reach (3, 3): leaving row 1 needs a push
    # +y with the gripper in the wall row 0 (and the relaxation knows the wall never moves):
    # NEVER. With want = 1: h_add = h_max = 2, not dead; want = 2: dead.
    planner = _arm_planner()
    s = grid_state(_open_walls(7), (1, 2), [(1, 3)], [(1, 5), (3, 3)])
    times = np.asarray(planner.target_times(s, 2))
    assert times[1, 5] == 2 and times[3, 3] == NEVER
    assert (times[2:6] == NEVER).all()  # no cell below row 1 either
    assert [int(x) for x in planner.heuristic(s, 1)] == [2, 2, 0]
    assert bool(planner.heuristic(s, 2)[2])
    assert best_first(planner, s, 1)[0] == [0, 0]  # +x, +x
    assert best_first(planner, s, 2) == ([], 0)  # pruned at the root: no plan of any length


@pytest.mark.slow  # compiles heuristics and children (seconds)
def test_astar_with_h_max_is_shortest_and_greedy_plans_work():
    # A* (h = "max", weight 1, batch 1) against breadth-first `solve` and discrete_arm.
    # solve_steps (a BFS on push_next, written separately) on two-block placements of the
    # training map; greedy best first finds a plan that covers both goals in push_next too
    planner = _arm_planner()
    walls = LAYOUTS["train"].walls
    for grip, blocks, goals in (
        ((2, 1), [(2, 2), (5, 5)], [(2, 4), (5, 4)]),
        ((6, 6), [(2, 2), (2, 5)], [(2, 3), (1, 6)]),
        ((1, 1), [(5, 2), (2, 5)], [(5, 5), (5, 1)]),
    ):
        s = grid_state(walls, grip, blocks, goals)
        shortest = solve_steps(walls, grip, blocks, goals)
        path, _ = best_first(planner, s, 2, h="max", weight=1.0, batch=1)
        assert len(path) == shortest == len(solve(planner, s, 2)[0])
        for kw in ({}, {"weight": 4.0}):
            path, expanded = best_first(planner, s, 2, **kw)
            x = s
            for a in path:
                x = push_next(x, a)
            assert covered_goals(x) == 2 and len(path) >= shortest and expanded > 0


@pytest.mark.slow  # brute force over every reachable state of random small worlds
def test_dead_end_pruning_never_prunes_a_solvable_state():
    # random placements on a 6 x 6 map (4 x 4 free, one inner wall), two blocks, two goals:
    # whenever the heuristic calls a state dead, exhaustive breadth-first search (solve, no
    # budget limit in practice) finds no plan; where solve finds one, h_max <= its length
    # (admissible), and best_first finds a plan too. Both kinds of state must occur.
    planner = _arm_planner()
    walls = _open_walls(6)
    walls[2, 3] = True
    free = [tuple(c) for c in np.argwhere(~walls).tolist()]
    rng = np.random.default_rng(0)
    dead_seen = live_seen = 0
    for _ in range(40):
        pick = rng.choice(len(free), 5, replace=False)
        cells = [free[i] for i in pick]
        s = grid_state(walls, cells[0], cells[1:3], cells[3:5])
        if covered_goals(s) == 2:
            continue
        h_add, h_max, dead = (int(x) for x in planner.heuristic(s, 2))
        path, expanded = solve(planner, s, 2, max_nodes=100_000)
        assert expanded < 100_000  # exhaustive: the budget never ran out
        if dead:
            assert path == []
            dead_seen += 1
        if path:
            assert not dead and h_max <= len(path)
            assert best_first(planner, s, 2)[0] != []
            live_seen += 1
    assert dead_seen >= 3 and live_seen >= 3


def test_best_first_bad_input_is_named():
    planner = _arm_planner()
    s = grid_state(_open_walls(5), (1, 1), [(2, 2)], [(3, 3)])
    with pytest.raises(ValueError, match="h must be 'add' or 'max', got 'min'"):
        best_first(planner, s, 1, h="min")
    with pytest.raises(ValueError, match="want=-1"):
        best_first(planner, s, -1)
    with pytest.raises(ValueError, match="best_first needs a planner with a target"):
        best_first(_planner(2), _push_state((4, 4), (1, 1), [], []), 1)
