"""Tabular Dyna-Q and Dyna-Q+ (Sutton & Barto, 2nd ed., Section 8.2-8.3).

After each real step `(s, a, r, s', done)` the agent

1. makes one Q-learning update, `Q(s, a) += alpha * (r + gamma * max_b Q(s', b) - Q(s, a))`
   (the bootstrap term is dropped when `s'` is terminal);
2. stores the deterministic model entry `Model(s, a) = (r, s', done)`;
3. makes `n = planning_steps` more Q-learning updates on pairs drawn uniformly, with replacement,
   from the pairs held by the model, using the model's `(r, s', done)` in place of real data.

The book's box draws a random observed state and then a random action taken in it; here each
stored pair is equally likely (the two agree once every action of a visited state has been
tried, which Dyna-Q+ ensures by construction).

Dyna-Q+ (`plus=True`) adds two things, both only in planning: the reward of a simulated
transition is `r + kappa * sqrt(tau)`, where `tau` is the number of real steps since the pair
was last tried for real; and when a state is first visited, every action not yet tried from it
enters the model as "leads back to the same state with reward 0", so planning can consider it.
An untried pair counts as last tried at time 0 (the start of the run), so its `tau` is the
number of real steps taken so far.

Behaviour is epsilon-greedy on Q, ties broken uniformly at random; Q starts at 0 (the book's
Example 8.1 setup). Everything is NumPy on the host: the updates are a few scalars each, and
`update` copies the small tables once per real step so that a state is never modified in place.
Randomness comes only from the `np.random.Generator` passed in, which is advanced (consumed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from prototypes.config import arg, check
from prototypes.envs import maze as maze_lib

__all__ = [
    "DynaQConfig",
    "DynaQState",
    "DynaQ",
    "Trajectory",
    "make_dyna_q",
    "greedy_action",
    "planning_target",
    "run_maze",
    "episode_lengths",
    "episodes_visiting",
]


@dataclass(frozen=True)
class DynaQConfig:
    """Hyperparameters of Dyna-Q / Dyna-Q+ (defaults: the book's Example 8.1)."""

    planning_steps: int = arg(0, "n: simulated Q-learning updates from the model per real step")
    alpha: float = arg(0.1, "step size of every Q-learning update, real or simulated")
    epsilon: float = arg(0.1, "probability of a uniformly random action (epsilon-greedy)")
    gamma: float = arg(0.95, "discount factor")
    plus: bool = arg(False, "Dyna-Q+: exploration bonus and untried actions in planning")
    kappa: float = arg(0.0, "Dyna-Q+ bonus weight: simulated reward r + kappa * sqrt(tau)")

    def __post_init__(self) -> None:
        check(self.planning_steps >= 0,
              f"planning_steps must be >= 0, got {self.planning_steps}")
        check(0.0 < self.alpha <= 1.0, f"alpha must be in (0, 1], got {self.alpha}")
        check(0.0 <= self.epsilon <= 1.0, f"epsilon must be in [0, 1], got {self.epsilon}")
        check(0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}")
        check(self.kappa >= 0.0, f"kappa must be >= 0, got {self.kappa}")
        check(self.plus or self.kappa == 0.0,
              f"kappa={self.kappa} is the Dyna-Q+ bonus: set plus=True or kappa=0")


@dataclass(frozen=True)
class DynaQState:
    """Tables of one Dyna-Q(+) agent. S states, A actions. Treated as immutable.

    Attributes:
        q: float64[S, A] action values.
        model_next: int64[S, A] modelled next state, -1 where the model has no entry.
        model_reward: float64[S, A] modelled reward.
        model_done: bool[S, A] whether the modelled next state is terminal.
        last_tried: int64[S, A] value of `time` just after the pair was last tried for real;
            0 if never tried.
        pairs: int64[S * A] flat pair indices `s * A + a` in the order they entered the model;
            the first `num_pairs` are valid.
        num_pairs: number of pairs in the model.
        time: real steps taken so far.
    """

    q: np.ndarray
    model_next: np.ndarray
    model_reward: np.ndarray
    model_done: np.ndarray
    last_tried: np.ndarray
    pairs: np.ndarray
    num_pairs: int
    time: int

    @property
    def known(self) -> np.ndarray:
        """bool[S, A]: pairs the model holds (tried, or untried in Dyna-Q+)."""
        return self.model_next >= 0

    @property
    def tried(self) -> np.ndarray:
        """bool[S, A]: pairs tried for real at least once."""
        return self.last_tried > 0


Transition = tuple[int, int, float, int, bool]  # (obs, action, reward, next_obs, done)


@dataclass(frozen=True)
class DynaQ:
    """A Dyna-Q(+) agent as pure functions over `DynaQState` (build with `make_dyna_q`).

    Attributes:
        init: `() -> DynaQState` with Q = 0 and an empty model.
        act: `(state, rng, obs) -> (action, state, info)`: epsilon-greedy with random ties;
            the state is returned unchanged; `rng` is consumed.
        update: `(state, rng, (obs, action, reward, next_obs, done)) -> (state, metrics)`:
            one real Q-learning update, the model update, then `planning_steps` simulated
            updates drawn with `rng` (consumed). The input state is not modified.
        num_states: S.
        num_actions: A.
    """

    init: Callable[[], DynaQState]
    act: Callable[[DynaQState, np.random.Generator, int], tuple[int, DynaQState, dict]]
    update: Callable[[DynaQState, np.random.Generator, Transition], tuple[DynaQState, dict]]
    num_states: int
    num_actions: int


def greedy_action(q_row: np.ndarray, rng: np.random.Generator) -> int:
    """An action of maximal value in `q_row` (float[A]), ties broken uniformly with `rng`.

    `rng` is consumed only when there is a tie.
    """
    values = np.asarray(q_row).tolist()
    top = max(values)
    best = [i for i, v in enumerate(values) if v == top]
    return best[0] if len(best) == 1 else best[int(rng.integers(len(best)))]


def planning_target(state: DynaQState, s: int, a: int, *, gamma: float, kappa: float) -> float:
    """The simulated Q-learning target of the modelled pair (s, a).

    `r + kappa * sqrt(tau) + gamma * max_b Q(s', b)` with `(r, s', done) = Model(s, a)` and
    `tau = state.time - last_tried[s, a]`; the bootstrap term is dropped when `done`.
    With `kappa = 0` this is the plain Dyna-Q target.

    Raises:
        ValueError: the model holds no entry for (s, a).
    """
    s2 = int(state.model_next[s, a])
    if s2 < 0:
        raise ValueError(f"the model has no entry for state {s}, action {a}")
    tau = state.time - int(state.last_tried[s, a])
    target = float(state.model_reward[s, a]) + kappa * np.sqrt(tau)
    if not state.model_done[s, a]:
        target += gamma * float(state.q[s2].max())
    return target


def make_dyna_q(cfg: DynaQConfig, num_states: int, num_actions: int) -> DynaQ:
    """Build a Dyna-Q (or Dyna-Q+, `cfg.plus`) agent for `num_states` x `num_actions` tables."""
    if num_states <= 0 or num_actions <= 0:
        raise ValueError(f"need num_states, num_actions > 0, got {num_states}, {num_actions}")
    n, alpha, epsilon, gamma = cfg.planning_steps, cfg.alpha, cfg.epsilon, cfg.gamma
    plus, kappa = cfg.plus, cfg.kappa
    S, A = num_states, num_actions

    def init() -> DynaQState:
        return DynaQState(
            q=np.zeros((S, A)),
            model_next=np.full((S, A), -1, dtype=np.int64),
            model_reward=np.zeros((S, A)),
            model_done=np.zeros((S, A), dtype=bool),
            last_tried=np.zeros((S, A), dtype=np.int64),
            pairs=np.zeros(S * A, dtype=np.int64),
            num_pairs=0,
            time=0,
        )

    def act(state: DynaQState, rng: np.random.Generator, obs: int) -> tuple[int, DynaQState, dict]:
        if epsilon > 0.0 and rng.random() < epsilon:
            return int(rng.integers(A)), state, {}
        return greedy_action(state.q[obs], rng), state, {}

    def update(
        state: DynaQState, rng: np.random.Generator, transition: Transition
    ) -> tuple[DynaQState, dict]:
        s, a, r, s2, done = transition
        s, a, s2, r, done = int(s), int(a), int(s2), float(r), bool(done)
        q = state.q.copy()
        model_next = state.model_next.copy()
        model_reward = state.model_reward.copy()
        model_done = state.model_done.copy()
        last_tried = state.last_tried.copy()
        pairs = state.pairs.copy()
        num_pairs = state.num_pairs
        time = state.time + 1

        # 1. Direct reinforcement learning: one Q-learning update on the real transition.
        target = r if done else r + gamma * q[s2].max()
        td_error = target - q[s, a]
        q[s, a] += alpha * td_error

        # 2. Model learning (deterministic: the latest outcome replaces the old one).
        if plus and model_next[s].max() < 0:
            # First visit of s: every action enters the model as "stay, reward 0".
            for b in range(A):
                model_next[s, b] = s
                pairs[num_pairs] = s * A + b
                num_pairs += 1
        elif model_next[s, a] < 0:
            pairs[num_pairs] = s * A + a
            num_pairs += 1
        model_next[s, a] = s2
        model_reward[s, a] = r
        model_done[s, a] = done
        last_tried[s, a] = time

        # 3. Planning: n simulated Q-learning updates on uniformly drawn modelled pairs. The
        # model does not change while planning, so its entries are gathered for all n draws
        # at once; the sequential Q updates run on Python lists (far faster per scalar).
        if n > 0:
            drawn = pairs[rng.integers(num_pairs, size=n)]
            base = model_reward.ravel()[drawn]
            if plus:
                base = base + kappa * np.sqrt(time - last_tried.ravel()[drawn])
            q_rows = q.tolist()
            for p, b, ps2, d in zip(drawn.tolist(), base.tolist(),
                                    model_next.ravel()[drawn].tolist(),
                                    model_done.ravel()[drawn].tolist(), strict=True):
                row = q_rows[p // A]
                pa = p % A
                sim_target = b if d else b + gamma * max(q_rows[ps2])
                row[pa] += alpha * (sim_target - row[pa])
            q = np.asarray(q_rows, dtype=np.float64)

        new_state = DynaQState(q, model_next, model_reward, model_done, last_tried, pairs,
                               num_pairs, time)
        return new_state, {"td_error": float(td_error)}

    return DynaQ(init=init, act=act, update=update, num_states=S, num_actions=A)


@dataclass(frozen=True)
class Trajectory:
    """Every real step of one run, in order. T steps.

    Attributes:
        obs: int64[T] state before the step.
        action: int64[T].
        reward: float64[T].
        next_obs: int64[T] state after the step (G when the episode ended).
        done: bool[T] whether the step reached G (the next step starts again at S).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    done: np.ndarray = field(repr=False)

    @property
    def cumulative_reward(self) -> np.ndarray:
        """float64[T]: total reward after each step (the y axis of the book's Figs 8.4, 8.5)."""
        return np.cumsum(self.reward)


def episode_lengths(traj: Trajectory) -> np.ndarray:
    """int64[E]: steps in each completed episode of `traj` (an unfinished last one is dropped)."""
    ends = np.flatnonzero(traj.done) + 1
    return np.diff(np.concatenate([[0], ends])).astype(np.int64)


def episodes_visiting(traj: Trajectory, states: Iterable[int]) -> np.ndarray:
    """bool[E]: for each completed episode of `traj`, whether it entered any of `states`.

    Used to tell whether an agent takes a path through given cells (the shortcut's gap).
    """
    hits = np.isin(traj.next_obs, np.fromiter(states, dtype=np.int64))
    ends = np.flatnonzero(traj.done) + 1
    starts = np.concatenate([[0], ends])[:-1].astype(np.int64)
    return np.array([bool(hits[a:b].any()) for a, b in zip(starts, ends, strict=True)], dtype=bool)


def run_maze(
    agent: DynaQ,
    maze: maze_lib.Maze,
    rng: np.random.Generator,
    *,
    num_episodes: int | None = None,
    num_steps: int | None = None,
) -> tuple[DynaQState, Trajectory]:
    """Run a fresh agent on `maze` until `num_episodes` episodes end or `num_steps` steps pass.

    Each episode starts at S; the walls in force follow the total number of steps taken
    (`maze_lib.walls_at`). Two child generators are spawned from `rng` (which is consumed): one
    for acting and one for planning, so that behaviour before the first reward (when every
    planning update leaves Q at 0) is identical for every number of planning steps.

    Args:
        agent: from `make_dyna_q`, sized for `maze.num_states` x `maze_lib.NUM_ACTIONS`.
        maze: the environment.
        rng: the source of all randomness of the run.
        num_episodes: stop after this many completed episodes.
        num_steps: stop after this many real steps.

    Returns:
        The final agent state and the trajectory of real steps.
    """
    if num_episodes is None and num_steps is None:
        raise ValueError("give num_episodes, num_steps or both")
    if any(b is not None and b <= 0 for b in (num_episodes, num_steps)):
        raise ValueError(f"budgets must be positive, got num_episodes={num_episodes}, "
                         f"num_steps={num_steps}")
    if agent.num_states != maze.num_states or agent.num_actions != maze_lib.NUM_ACTIONS:
        raise ValueError(f"agent tables {agent.num_states}x{agent.num_actions} do not fit the "
                         f"maze ({maze.num_states} states, {maze_lib.NUM_ACTIONS} actions)")
    rng_act, rng_plan = rng.spawn(2)
    state = agent.init()
    obs_l: list[int] = []
    act_l: list[int] = []
    rew_l: list[float] = []
    next_l: list[int] = []
    done_l: list[bool] = []
    max_steps = np.inf if num_steps is None else num_steps
    max_episodes = np.inf if num_episodes is None else num_episodes
    obs, t, episodes = maze.start_state, 0, 0
    while t < max_steps and episodes < max_episodes:
        action, state, _ = agent.act(state, rng_act, obs)
        next_obs, reward, done = maze_lib.step(maze, obs, action, t)
        state, _ = agent.update(state, rng_plan, (obs, action, reward, next_obs, done))
        obs_l.append(obs)
        act_l.append(action)
        rew_l.append(reward)
        next_l.append(next_obs)
        done_l.append(done)
        t += 1
        if done:
            episodes += 1
            obs = maze.start_state
        else:
            obs = next_obs
    traj = Trajectory(
        obs=np.asarray(obs_l, dtype=np.int64),
        action=np.asarray(act_l, dtype=np.int64),
        reward=np.asarray(rew_l, dtype=np.float64),
        next_obs=np.asarray(next_l, dtype=np.int64),
        done=np.asarray(done_l, dtype=bool),
    )
    return state, traj
