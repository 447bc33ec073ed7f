"""Planning on schema networks: max-product over the grounded OR/AND graph unrolled in time.

The graph. Grounding a `SchemaRules` (envs/schema_world.py) on an H x W grid and unrolling it T
steps gives binary variables x[t, cell, k] and one action variable a[t] per step. Every grounded
schema is an AND factor over its literals at t (attribute values of cells at its offsets, and
a[t] = its action); each event ("attribute k of this cell turns on / off at t + 1") is the OR
of its grounded schemas; x[t + 1, cell, k] = x[t] ? NOT off : on; the reward at t is the OR of
the reward schemas over cells. The dynamics are deterministic, so with x[0] clamped the only
free variables are the actions, and max-product on this graph is a search over action sequences.

Max-product in the {0, -inf} semiring, relaxed (how the messages are computed). In log space
every factor is 0 or -inf, so a max-product message is a set of values a variable *can* take:
m[t, cell, k, v] = 0 iff some assignment of the actions makes x[t, cell, k] = v. Passing these
messages forward through the unrolled graph with every action variable free, and each AND
factor combining its incoming messages as if they were independent (the loopy-BP
approximation: the shared a[t] and the shared x[t] that two literals both read are not tied
together), gives `possible[t, cell, k, v]`, an over-approximation of the reachable values
(a block that is pushed away is still "possibly" where it was). The reward message
`possible_reward[t]` says whether the reward can fire at t; its first t is a lower bound on the
number of steps to the reward, exact when the relaxation is (a straight push, a gripper walking
around walls). This is the forward pass of Kansky et al. (2017); as there, the plan is read
off backward from the reward, here by clamping: the max-marginal of a[0] = a is computed by
stepping the exact grounded graph with a[0] = a (and, with `depth` > 1, every continuation of
`depth` actions), then running the relaxed messages from the resulting state:

    value(a) = max over continuations of  sum_{t < depth} discount^t r_t
                                          + discount^(depth + first possible reward from there)

An action that changes a `frozen` literal (a sub-goal the caller protects, e.g. a block already
on its goal) gets value -1, and frozen literals are clamped in the relaxed messages too. `plan`
decodes a whole sequence greedily: pick the best a[0] (ties: fewer visits of the state it leads
to, then the lowest index), step, repeat, `horizon` times. It is exact on worlds where the
relaxation is (tests/planning/test_schema_planner.py checks it against enumeration of every
action sequence); in general it is the heuristic the paper's planner is too.

Search guided by the messages (`best_first`, what experiments/schema_arm.py plans with). The
relaxed planner above reads its plan off the messages greedily and can walk into dead ends (a
block pushed against a wall it can never leave, a covered goal in the way of the next block);
`solve` avoids them by breadth-first search over every distinct state of the exact graph, which
is too slow on three blocks. `best_first` searches the same exact graph (identical states
merged, as max-product on a deterministic graph may do) but in the order the relaxed messages
suggest: run from a state to their fixpoint, they give per cell the first step at which it can
meet the target, and the sum of those times over the cells still needed (h_add) orders the
search; a state from which too few cells can ever meet the target is pruned, which is sound
because the messages over-approximate (`best_first`). The messages are heuristic guidance and
the pruning; the plan itself is a path in the exact graph, complete within the node budget.

Everything runs as one jitted JAX function over flat arrays compiled on the host from the rules
(`compile_rules`): the literal columns some schema reads are sliced from a padded grid, a schema
holds where all of its few columns are true (a gather), events are an OR over schemas (a small
matmul). Cost per relaxed step ~ H W x (U + S L), U literal columns, L literals per schema.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool

from prototypes.config import arg, check
from prototypes.envs.schema_world import SchemaRules, SchemaSpec

__all__ = [
    "SchemaPlannerConfig",
    "CompiledRules",
    "SchemaPlanner",
    "compile_rules",
    "make_schema_planner",
    "brute_force_value",
    "search",
    "plan_search",
    "solve",
    "best_first",
    "NEVER",
]

NEVER = 1_000_000  # `target_times` of a cell the relaxed messages never let meet the target


@dataclass(frozen=True)
class SchemaPlannerConfig:
    horizon: int = arg(20, "steps of the unrolled graph (relaxed messages and decoded plan)")
    discount: float = arg(0.95, "discount of later rewards; < 1 so sooner is better")
    depth: int = arg(1, "exact lookahead steps before the relaxed messages (A^depth branches)")

    def __post_init__(self) -> None:
        check(self.horizon >= 1, f"horizon must be >= 1, got {self.horizon}")
        check(0.0 < self.discount < 1.0, f"discount must be in (0, 1), got {self.discount}")
        check(1 <= self.depth <= 4, f"depth must be in 1..4, got {self.depth}")


@dataclass(frozen=True)
class CompiledRules:
    """Flat arrays of the grounded schemas (one row per lifted schema, S of them).

    Attributes:
        literals: float32 [S, 2OK], 1 where the schema needs a state literal (feature layout of
            schema_world.ground without the action part).
        actions: bool [S, A], the actions under which it can hold (all for a schema with no
            action literal, none for one with two different actions).
        events: float32 [S, 2K + 1], its event: column 2k on:k, 2k + 1 off:k, 2K reward.
        offsets: the spec's offsets; pad: int [K] attribute values outside the grid.
    """

    literals: np.ndarray
    actions: np.ndarray
    events: np.ndarray
    offsets: tuple[tuple[int, int], ...]
    pad: np.ndarray


def compile_rules(spec: SchemaSpec, rules: SchemaRules) -> CompiledRules:
    """The rules as flat arrays; a dummy schema that never holds (no action allows it) and fires
    no event is appended so S >= 1.

    Raises:
        ValueError: rules that do not fit the spec (a feature index out of range, wrong number
            of attribute groups).
    """
    rules.check(spec)
    K, A = spec.num_attributes, len(spec.actions)
    n_state = 2 * spec.num_offsets * K
    rows: list[tuple[tuple[int, ...], int]] = []
    for k in range(K):
        rows += [(s, 2 * k) for s in rules.on[k]] + [(s, 2 * k + 1) for s in rules.off[k]]
    rows += [(s, 2 * K) for s in rules.reward]
    S = len(rows) + 1
    literals = np.zeros((S, n_state), np.float32)
    actions = np.zeros((S, A), bool)
    events = np.zeros((S, 2 * K + 1), np.float32)
    for i, (schema, event) in enumerate(rows):
        state = [f for f in schema if f < n_state]
        acts = {f - n_state for f in schema if f >= n_state}
        literals[i, state] = 1.0
        if not acts:
            actions[i] = True
        elif len(acts) == 1:
            actions[i, acts.pop()] = True
        events[i, event] = 1.0
    return CompiledRules(literals, actions, events, spec.offsets, np.asarray(spec.pad))


@dataclass(frozen=True)
class SchemaPlanner:
    """Pure functions of a compiled schema model (all jitted; shapes fixed by the first call).

    step: (state bool [H, W, K], action int) -> (next state, reward bool): the exact grounded
        graph with the action clamped (most likely = only next state; deterministic).
    first_reward: (state, frozen bool [H, W, K]) -> int, the first t at which the relaxed
        messages say the reward can fire (0: at the next transition), `horizon` if none.
    action_values: (state, frozen) -> (values float [A], next states bool [A, H, W, K]): the
        max-marginal value of each first action (module docstring).
    plan: (state, frozen) -> (actions int [T], rewards bool [T], value float): the greedy
        decode of a whole plan of `horizon` steps, simulated on the exact graph.
    expand: (states bool [N, H, W, K], frozen) -> (children [N, A, H, W, K], rewards [N, A],
        first relaxed reward [N, A], frozen literal changed [N, A], cells meeting the target
        [N, A] (0 without a target)): one breadth-first layer of `search`.
    children: states bool [N, H, W, K] -> (children [N, A, H, W, K], rewards [N, A], cells
        meeting the target [N, A]): `expand` without the relaxed messages, for `solve`.
    target_times: (state, want) -> int32 [H, W], per cell the fewest steps after which the
        relaxed messages say the cell can meet the target (0: it does now); they are passed
        until `want` cells have a time or nothing changes (the fixpoint), and a cell with none
        by then gets `NEVER` (at the fixpoint: no number of steps makes it meet the target).
        Needs a target.
    heuristic: (state, want) -> (h_add int32, h_max int32, dead bool): read from
        `target_times` (`best_first`); needs a target.
    heuristics: (states bool [N, H, W, K], want) -> (h_add [N], h_max [N], dead [N]):
        `heuristic` of a batch (`best_first` scores the new children of a batch with it).
    count: state -> int, the cells meeting the target (0 without one).
    target: whether the reward is a target state (`make_schema_planner`).
    """

    expand: Callable
    children: Callable
    target_times: Callable
    heuristic: Callable
    heuristics: Callable
    count: Callable
    step: Callable
    first_reward: Callable
    action_values: Callable
    plan: Callable
    num_actions: int
    horizon: int
    discount: float
    target: bool = False


def _sparse_literals(c: CompiledRules) -> tuple[np.ndarray, np.ndarray]:
    """(used, index): the state-literal columns any schema reads (int [U]) and, per schema,
    its literals as positions in `used`, padded with U (a column that is always true): int
    [S, L], L the most literals of a schema (at least 1)."""
    used = np.flatnonzero(c.literals.any(0))
    pos = {int(f): i for i, f in enumerate(used)}
    rows = [[pos[int(f)] for f in np.flatnonzero(r)] for r in c.literals]
    width = max(1, *(len(r) for r in rows))
    index = np.full((len(rows), width), len(used), np.int32)
    for i, r in enumerate(rows):
        index[i, : len(r)] = r
    return used, index


def _events_kvhw(
    c: CompiledRules, possible: Bool[Array, "K 2 H W"], action_mask: Bool[Array, " A"]
) -> tuple[Bool[Array, "K H W"], Bool[Array, "K H W"], Bool[Array, ""]]:
    """`_events` on the attribute-major layout possible[k, v, row, col] (on, off [K, H, W]):
    the layout the fixpoint of `target_times` iterates in (cells contiguous, no transposes).

    Only the literal columns some schema reads are built (a shifted slice of the padded grid
    each), and each schema's AND is a gather of its few columns, not a matmul over all 2OK."""
    K, _, H, W = possible.shape
    R = max(max(abs(dr), abs(dc)) for dr, dc in c.offsets)
    used, index = _sparse_literals(c)
    pad = jax.nn.one_hot(jnp.asarray(c.pad), 2, dtype=bool)  # [K, 2]
    grid = jnp.broadcast_to(pad[:, :, None, None], (K, 2, H + 2 * R, W + 2 * R))
    grid = grid.at[:, :, R : R + H, R : R + W].set(possible)
    cols = []
    for f in used.tolist():  # feature f = 2 (j K + k) + v
        j, rest = divmod(f, 2 * K)
        k, v = divmod(rest, 2)
        dr, dc = c.offsets[j]
        cols.append(grid[k, v, R + dr : R + dr + H, R + dc : R + dc + W])
    cols.append(jnp.ones((H, W), bool))
    truth = jnp.stack(cols).reshape(-1, H * W)  # [U + 1, HW]
    act_ok = (jnp.asarray(c.actions) & action_mask[None, :]).any(1)  # [S]
    holds = truth[jnp.asarray(index)].all(1) & act_ok[:, None]  # [S, HW]
    ev = jnp.asarray(c.events).T @ holds.astype(jnp.float32) > 0  # [2K + 1, HW]
    return ev[0 : 2 * K : 2].reshape(K, H, W), ev[1 : 2 * K : 2].reshape(K, H, W), ev[2 * K].any()


def _events(
    c: CompiledRules, possible: Bool[Array, "H W K 2"], action_mask: Bool[Array, " A"]
) -> tuple[Bool[Array, "H W K"], Bool[Array, "H W K"], Bool[Array, ""]]:
    """(on, off, reward): events some grounded schema can fire (AND over literals, OR over
    schemas); with a one-hot `possible` and action mask, the exact events."""
    on, off, reward = _events_kvhw(c, jnp.moveaxis(possible, (2, 3), (0, 1)), action_mask)
    return jnp.moveaxis(on, 0, 2), jnp.moveaxis(off, 0, 2), reward


def make_schema_planner(
    spec: SchemaSpec,
    rules: SchemaRules,
    cfg: SchemaPlannerConfig | None = None,
    target: tuple[tuple[str, int], ...] | None = None,
) -> SchemaPlanner:
    """Compile `rules` and build the planner's jitted functions (module docstring).

    Args:
        spec, rules: the schema model.
        cfg: horizon, discount, lookahead depth.
        target: None to plan on the rules' reward schemas; or literals (attribute, value) of
            one cell, e.g. (("block", 1), ("goal", 1)): the reward of a transition is then 1 if
            some cell that did not satisfy them all does after it (in the relaxed messages: a
            cell where they can all hold at t + 1 that did not at the start). A goal given
            as a state, for rewards the training data could not teach (module docstring of
            experiments/schema_arm.py).

    Raises:
        ValueError: rules that do not fit the spec; an unknown attribute or a value other than
            0 or 1 in `target`.
    """
    cfg = cfg or SchemaPlannerConfig()
    c = compile_rules(spec, rules)
    tk = tv = None
    if target is not None:
        if not target:
            raise ValueError("target must name at least one (attribute, value) literal")
        for name, value in target:
            spec.literal((0, 0), name, value)  # raises on an unknown attribute or bad value
        tk = jnp.asarray([spec.attribute_index(n) for n, _ in target], jnp.int32)
        tv = jnp.asarray([int(v) for _, v in target], jnp.int32)

    def target_holds(possible):  # [H, W, K, 2] -> [H, W]: every target literal (possibly) true
        return possible[:, :, tk, tv].all(-1)
    A, T, gamma, depth = len(spec.actions), cfg.horizon, cfg.discount, cfg.depth
    seqs = jnp.asarray(list(itertools.product(range(A), repeat=depth)), jnp.int32)  # [N, d]
    all_actions = jnp.ones(A, bool)

    def step(state, action):
        possible = jnp.stack([~state, state], -1)
        on, off, reward = _events(c, possible, jax.nn.one_hot(action, A, dtype=bool))
        nxt = jnp.where(state, ~off, on)
        if tk is not None:
            after = target_holds(jnp.stack([~nxt, nxt], -1))
            reward = (after & ~target_holds(possible)).any()
        return nxt, reward

    def first_reward(state, frozen):
        clamp = jnp.stack([~state, state], -1)
        frozen2 = frozen[..., None]
        done = target_holds(clamp) if tk is not None else None

        def body(possible, _):
            on, off, reward = _events(c, possible, all_actions)
            one = possible[..., 1] | (on & possible[..., 0])
            zero = possible[..., 0] | (off & possible[..., 1])
            nxt = jnp.where(frozen2, clamp, jnp.stack([zero, one], -1))
            if tk is not None:
                reward = (target_holds(nxt) & ~done).any()
            return nxt, reward

        _, rewards = jax.lax.scan(body, clamp, None, length=T)
        return jnp.where(rewards.any(), jnp.argmax(rewards), T)

    def branch_value(state, frozen, seq):
        def body(carry, action):
            x, value, bad, t = carry
            x1, r = step(x, action)
            bad = bad | (frozen & (x1 != state)).any()
            return (x1, value + gamma**t * r, bad, t + 1), None

        init = (state, jnp.float32(0.0), jnp.bool_(False), jnp.float32(0.0))
        (leaf, value, bad, _), _ = jax.lax.scan(body, init, seq)
        h = first_reward(leaf, frozen)
        value = value + jnp.where(h < T, gamma ** (depth + h.astype(jnp.float32)), 0.0)
        return jnp.where(bad, -1.0, value)

    def action_values(state, frozen):
        values = jax.vmap(branch_value, in_axes=(None, None, 0))(state, frozen, seqs)  # [N]
        values = values.reshape(A, -1).max(1)
        nxt, _ = jax.vmap(step, in_axes=(None, 0))(state, jnp.arange(A))
        return values, nxt

    def plan(state, frozen):
        history = jnp.zeros((T + 1, *state.shape), bool).at[0].set(state)

        def body(carry, t):
            x, hist = carry
            values, nxt = action_values(x, frozen)
            seen = (nxt[:, None] == hist[None]).all((2, 3, 4)) & (jnp.arange(T + 1) <= t)[None, :]
            a = jnp.argmax(values - 1e-4 * seen.sum(1))
            x1, r = step(x, a)
            return (x1, hist.at[t + 1].set(x1)), (a, r)

        _, (acts, rewards) = jax.lax.scan(body, (state, history), jnp.arange(T))
        value = (gamma ** jnp.arange(T, dtype=jnp.float32) * rewards).sum()
        return acts, rewards, value

    def count(state):
        if tk is None:
            return jnp.int32(0)
        return target_holds(jnp.stack([~state, state], -1)).sum()

    def successors(state):  # [H, W, K] -> every action's child, reward, target count
        nxt, r = jax.vmap(step, in_axes=(None, 0))(state, jnp.arange(A))
        return nxt, r, jax.vmap(count)(nxt)

    def expand(states, frozen):  # [N, H, W, K] -> every action's child, reward, h, violation
        def one(state):
            nxt, r, n = successors(state)
            h = jax.vmap(first_reward, in_axes=(0, None))(nxt, frozen)
            bad = (frozen[None] & (nxt != state[None])).any((1, 2, 3))
            return nxt, r, h, bad, n

        return jax.vmap(one)(states)

    def children(states):  # [N, H, W, K] -> every action's child, reward, target count
        return jax.vmap(successors)(states)

    def target_times(state, want):  # [H, W, K] -> int32 [H, W]: relaxed steps until cells meet
        if tk is None:
            return jnp.full(state.shape[:2], NEVER, jnp.int32)
        cap = int(np.prod(state.shape)) + 1  # every step adds a value or stops: a fixpoint by then
        x = jnp.moveaxis(state, 2, 0)  # [K, H, W]
        clamp = jnp.stack([~x, x], 1)  # [K, 2, H, W]

        def meets(possible):  # [H, W]: every target literal possibly true
            return possible[tk, tv].all(0)

        first = jnp.where(meets(clamp), 0, NEVER).astype(jnp.int32)

        def cond(carry):  # not yet at the fixpoint, and fewer than `want` cells have a time
            _, first, t, changed = carry
            return changed & (t < cap) & ((first < NEVER).sum() < want)

        def body(carry):
            possible, first, t, _ = carry
            on, off, _ = _events_kvhw(c, possible, all_actions)
            one = possible[:, 1] | (on & possible[:, 0])
            zero = possible[:, 0] | (off & possible[:, 1])
            nxt = jnp.stack([zero, one], 1)
            first = jnp.where((first == NEVER) & meets(nxt), t + 1, first)
            return nxt, first, t + 1, (nxt != possible).any()

        init = (clamp, first, jnp.int32(0), jnp.bool_(True))
        return jax.lax.while_loop(cond, body, init)[1]

    def heuristic(state, want):  # -> (h_add, h_max, dead) of reaching `want` target cells
        first = target_times(state, want)
        meets = first == 0
        need = want - meets.sum()
        times = jnp.sort(jnp.where(meets, NEVER, first).ravel())  # cells that must still turn
        pick = jnp.arange(times.size) < need
        kth = times[jnp.clip(need - 1, 0, times.size - 1)]
        dead = (need > 0) & (kth >= NEVER)
        h_add = jnp.where(pick, jnp.minimum(times, NEVER), 0).sum()
        h_max = jnp.where(need > 0, kth, 0)
        return h_add, h_max, dead

    def heuristics(states, want):  # [N, H, W, K] -> h_add, h_max, dead [N]
        return jax.vmap(heuristic, in_axes=(0, None))(states, want)

    return SchemaPlanner(
        expand=jax.jit(expand),
        children=jax.jit(children),
        target_times=jax.jit(target_times),
        heuristic=jax.jit(heuristic),
        heuristics=jax.jit(heuristics),
        count=jax.jit(count),
        step=jax.jit(step),
        first_reward=jax.jit(first_reward),
        action_values=jax.jit(action_values),
        plan=jax.jit(plan),
        num_actions=A,
        horizon=T,
        discount=gamma,
        target=tk is not None,
    )


def brute_force_value(
    step_fn: Callable[[np.ndarray, int], tuple[np.ndarray, bool]],
    state: np.ndarray,
    num_actions: int,
    horizon: int,
    discount: float,
) -> tuple[float, tuple[int, ...]]:
    """max over every action sequence of sum_t discount^t r_t, and the first best sequence
    (lexicographic order), by enumerating all num_actions^horizon sequences (tiny worlds only).

    `step_fn(state, action) -> (next state, reward)` on the host (e.g. schema_world.step).
    """
    best, best_seq = -np.inf, ()

    @functools.cache
    def go(key: bytes, depth: int) -> tuple[float, tuple[int, ...]]:
        if depth == horizon:
            return 0.0, ()
        x = np.frombuffer(key, bool).reshape(state.shape)
        out = (-np.inf, ())
        for a in range(num_actions):
            x1, r = step_fn(x, a)
            v, rest = go(np.ascontiguousarray(x1, bool).tobytes(), depth + 1)
            v = float(r) + discount * v
            if v > out[0] + 1e-12:
                out = (v, (a, *rest))
        return out

    best, best_seq = go(np.ascontiguousarray(state, bool).tobytes(), 0)
    return best, best_seq


CHUNKS = (4, 64)  # batch sizes `search` compiles `expand` for


def search(
    planner: SchemaPlanner,
    state: Bool[np.ndarray, "H W K"],
    frozen: Bool[np.ndarray, "H W K"],
    max_nodes: int = 4096,
) -> tuple[list[int], str]:
    """The shortest action sequence (breadth first on the exact grounded graph) that either
    gains (the reward; with a target, more cells meeting it than at the start) or reaches a
    state whose first relaxed reward is sooner than the start's: one step of enforced hill
    climbing, which escapes the plateaus where every single action leaves the relaxed estimate
    unchanged (the relaxation lets two cells take different actions at once). Children that
    change a frozen literal are not expanded.

    Returns:
        (actions, how): how is "reward", "closer", or "none" (no such state within `max_nodes`
        expanded states; actions is then []).
    """
    state, frozen = np.asarray(state, bool), np.asarray(frozen, bool)
    h0 = int(planner.first_reward(state, frozen))
    seen = {state.tobytes()}
    frontier: list[tuple[np.ndarray, list[int]]] = [(state, [])]
    expanded = 0
    root_count = int(planner.count(state))
    while frontier and expanded < max_nodes:
        nxt_frontier = []
        for lo in range(0, len(frontier), CHUNKS[-1]):
            part = frontier[lo : lo + CHUNKS[-1]]
            size = next(c for c in CHUNKS if c >= len(part))
            batch = np.zeros((size, *state.shape), bool)
            batch[: len(part)] = [s for s, _ in part]
            nxt, rew, h, bad, count = (np.asarray(x) for x in planner.expand(batch, frozen))
            expanded += len(part)
            for i, (_, path) in enumerate(part):
                for a in range(planner.num_actions):
                    if bad[i, a]:
                        continue
                    gain = count[i, a] > root_count if planner.target else rew[i, a]
                    if gain:
                        return [*path, a], "reward"
                    if h[i, a] < h0:
                        return [*path, a], "closer"
                    key = nxt[i, a].tobytes()
                    if key not in seen:
                        seen.add(key)
                        nxt_frontier.append((nxt[i, a], [*path, a]))
        frontier = nxt_frontier
    return [], "none"


def plan_search(
    planner: SchemaPlanner,
    state: Bool[np.ndarray, "H W K"],
    frozen: Bool[np.ndarray, "H W K"],
    max_nodes: int = 4096,
) -> tuple[list[int], list[bool]]:
    """A plan of at most `horizon` actions by repeated `search` until the reward is collected,
    no closer state is found, or the horizon is used up; (actions, rewards) on the exact graph."""
    x = np.asarray(state, bool)
    actions: list[int] = []
    rewards: list[bool] = []
    while len(actions) < planner.horizon:
        path, how = search(planner, x, frozen, max_nodes)
        if not path:
            break
        for a in path[: planner.horizon - len(actions)]:
            x1, r = planner.step(x, a)
            x = np.asarray(x1)
            actions.append(a)
            rewards.append(bool(r))
        if how == "reward":
            break
    return actions, rewards


def _path_to(parent: dict[bytes, tuple[bytes, int]], root: bytes, key: bytes) -> list[int]:
    """The actions from `root` to `key` along the search's parent links {child: (parent, a)}."""
    path = []
    while key != root:
        key, action = parent[key]
        path.append(action)
    return path[::-1]


SOLVE_CHUNK = 256  # states per `children` call in `solve` (one compiled batch size)


def solve(
    planner: SchemaPlanner,
    state: Bool[np.ndarray, "H W K"],
    want: int,
    max_nodes: int = 200_000,
) -> tuple[list[int], int]:
    """The shortest action sequence to a state with `want` cells meeting the target, by
    breadth-first search over the exact grounded graph (the model's deterministic step).

    Max-product on the unrolled graph with x[0] clamped is a max over action sequences; on a
    deterministic model two sequences that reach the same state have the same future, so
    merging them (dynamic programming over distinct states, as Viterbi does) makes the
    exhaustive max tractable: breadth-first order gives the shortest sequence, which is the
    max-product plan under a discount < 1. Where the relaxed messages (`plan`, `search`)
    follow a heuristic and can walk into a dead end (a block pushed against a wall it can
    never leave, a covered goal in the way of the next block), this explores every distinct
    state up to the solution's depth, so it finds a plan whenever the model says one exists
    within `max_nodes` expanded states. Needs a target (`make_schema_planner(target=...)`).

    Returns:
        (actions, expanded): actions [] if `state` already meets `want` or nothing within
        `max_nodes` does (expanded then tells which: >= max_nodes means the budget ran out).

    Raises:
        ValueError: a planner without a target.
    """
    if not planner.target:
        raise ValueError("solve needs a planner with a target (make_schema_planner(target=...))")
    state = np.asarray(state, bool)
    if int(planner.count(state)) >= want:
        return [], 0
    root = np.packbits(state).tobytes()
    parent: dict[bytes, tuple[bytes, int]] = {root: (b"", -1)}
    frontier = state[None]
    expanded = 0
    while len(frontier) and expanded < max_nodes:
        nxt_frontier = []
        for lo in range(0, len(frontier), SOLVE_CHUNK):
            part = frontier[lo : lo + SOLVE_CHUNK]
            batch = np.zeros((SOLVE_CHUNK, *state.shape), bool)
            batch[: len(part)] = part
            kids, _, count = (np.asarray(x) for x in planner.children(batch))
            keys = np.packbits(part.reshape(len(part), -1), axis=1)
            kid_keys = np.packbits(kids[: len(part)].reshape(len(part), planner.num_actions, -1),
                                   axis=2)
            expanded += len(part)
            for i in range(len(part)):
                pk = keys[i].tobytes()
                for a in range(planner.num_actions):
                    key = kid_keys[i, a].tobytes()
                    if key in parent:
                        continue
                    parent[key] = (pk, a)
                    if count[i, a] >= want:
                        return _path_to(parent, root, key), expanded
                    nxt_frontier.append(kids[i, a])
        frontier = np.asarray(nxt_frontier, bool).reshape(-1, *state.shape)
    return [], expanded


GROW_BATCH = 8  # states expanded per batch in `best_first` (one compiled `children` size)
SCORE_SIZES = (8, 16, 32)  # batch sizes `best_first` compiles `heuristics` for


def best_first(
    planner: SchemaPlanner,
    state: Bool[np.ndarray, "H W K"],
    want: int,
    max_nodes: int = 20_000,
    weight: float | None = None,
    h: str = "add",
    batch: int = GROW_BATCH,
) -> tuple[list[int], int]:
    """A plan to a state with `want` cells meeting the target: best-first search over the
    exact grounded graph, ordered and pruned by the relaxed max-product messages.

    The graph searched is `solve`'s (the learned model's deterministic step; identical states
    merged). Each generated state is scored from `target_times`: the relaxed messages give, per
    cell, the fewest steps after which it can meet the target (passed until enough cells have
    a time, found in order of time, or else to their fixpoint). With n
    more cells needed, h = "add" sums the n smallest such times over the cells that do not
    meet it now (the additive h of the HSP / FF planners: informative, not admissible); h =
    "max" takes the n-th smallest (admissible and consistent: each of those n cells must turn
    within the plan, and a child's times are at least its parent's minus one). Order: g +
    weight * h, ties by h, then first generated; `weight=None` is greedy best first (h, then
    g). With h = "max", weight = 1 and batch = 1 this is A*, and its plans are shortest (with a
    weight, a state reached again by a shorter path is reopened; greedy search never does). A
    state is pruned as a dead end when fewer than n cells can ever meet the target. That is
    sound: the relaxed messages over-approximate every value the exact graph can reach at every
    step (induction on t: each literal of the exact state is among the possible ones, so each
    exact event is among the possible events), and the fixpoint covers every number of steps, so
    a pruned state has no plan of any length. Otherwise the search stops only when nothing is
    left or `max_nodes` states were expanded, so it finds a plan whenever the model has one
    within the budget.
    The `batch` best open states are expanded per jitted `children` call, and the children
    never generated before are scored in one jitted `heuristics` call (a state's score is
    kept, so each distinct state runs the relaxed messages once).

    Returns:
        (actions, expanded): actions [] if `state` already meets `want` or no plan was found
        (expanded >= max_nodes: the budget ran out; otherwise the model admits no plan).

    Raises:
        ValueError: a planner without a target, want < 0, max_nodes or batch < 1, a negative
            weight, or h other than "add" or "max".
    """
    if not planner.target:
        raise ValueError(
            "best_first needs a planner with a target (make_schema_planner(target=...))"
        )
    if h not in ("add", "max"):
        raise ValueError(f"h must be 'add' or 'max', got {h!r}")
    if want < 0 or max_nodes < 1 or batch < 1 or (weight is not None and weight < 0):
        raise ValueError(
            f"best_first needs want >= 0, max_nodes >= 1, batch >= 1, weight >= 0 or None; got "
            f"want={want}, max_nodes={max_nodes}, batch={batch}, weight={weight}"
        )
    state = np.asarray(state, bool)
    if int(planner.count(state)) >= want:
        return [], 0
    h_add, h_max, dead = (int(x) for x in planner.heuristic(state, want))
    if dead:
        return [], 0
    which = 0 if h == "add" else 1  # position of the chosen h in `heuristics`' outputs
    scores: dict[bytes, tuple[int, int, bool]] = {}  # state -> (h_add, h_max, dead)
    A = planner.num_actions

    def priority(g: int, hv: int) -> tuple:
        return (hv, g) if weight is None else (g + weight * hv, hv)

    root = np.packbits(state).tobytes()
    parent: dict[bytes, tuple[bytes, int]] = {root: (b"", -1)}
    best_g: dict[bytes, int] = {root: 0}
    open_states: dict[bytes, np.ndarray] = {root: state}
    scores[root] = (h_add, h_max, bool(dead))
    tick = itertools.count()
    heap = [(priority(0, h_add if h == "add" else h_max), next(tick), root, 0)]
    expanded = 0
    while heap and expanded < max_nodes:
        keys: list[bytes] = []
        while heap and len(keys) < batch:
            _, _, key, g = heapq.heappop(heap)
            if key in open_states and g == best_g[key] and key not in keys:
                keys.append(key)
        if not keys:
            break
        part = np.zeros((batch, *state.shape), bool)
        part[: len(keys)] = [open_states.pop(k) for k in keys]
        kids, _, count = (np.asarray(x) for x in planner.children(part))
        flat = np.packbits(kids[: len(keys)].reshape(len(keys), A, -1), axis=2)
        expanded += len(keys)
        new: dict[bytes, np.ndarray] = {}
        for i in range(len(keys)):
            for a in range(A):
                key = flat[i, a].tobytes()
                if key not in scores and key not in new:
                    new[key] = kids[i, a]
        todo = list(new)
        for lo in range(0, len(todo), SCORE_SIZES[-1]):
            chunk = todo[lo : lo + SCORE_SIZES[-1]]
            size = next(n for n in SCORE_SIZES if n >= len(chunk))
            xs = np.zeros((size, *state.shape), bool)
            xs[: len(chunk)] = [new[k] for k in chunk]
            got = [np.asarray(x) for x in planner.heuristics(xs, want)]
            for j, k in enumerate(chunk):
                scores[k] = (int(got[0][j]), int(got[1][j]), bool(got[2][j]))
        for i, pk in enumerate(keys):
            g = best_g[pk] + 1
            for a in range(planner.num_actions):
                key = flat[i, a].tobytes()
                if key in best_g and (
                    best_g[key] <= g or (weight is None and key not in open_states)
                ):  # greedy search never reopens an expanded state
                    continue
                best_g[key], parent[key] = g, (pk, a)
                if count[i, a] >= want:
                    return _path_to(parent, root, key), expanded
                score = scores[key]
                if score[2]:  # dead
                    continue
                open_states[key] = kids[i, a]
                heapq.heappush(heap, (priority(g, score[which]), next(tick), key, g))
    return [], expanded
