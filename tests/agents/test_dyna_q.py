"""Dyna-Q / Dyna-Q+: hand-derived updates, model replay, bonus, determinism, learning, and the
`experiments/dyna_maze.py` script (smoke run, resume, bad input)."""

import dataclasses
import json

import numpy as np
import pytest

from prototypes.agents.dyna_q import (
    DynaQConfig,
    Trajectory,
    episode_lengths,
    episodes_visiting,
    greedy_action,
    make_dyna_q,
    planning_target,
    run_maze,
)
from prototypes.config import ConfigError
from prototypes.data.runs import has_checkpoint
from prototypes.envs.maze import NUM_ACTIONS, make_maze
from tests.scripts import load_script

DYNA_MAZE = make_maze("dyna")


def _agent(**kw):
    return make_dyna_q(DynaQConfig(**kw), DYNA_MAZE.num_states, NUM_ACTIONS)


# --- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"planning_steps": -1}, "planning_steps must be >= 0"),
        ({"epsilon": 1.5}, "epsilon must be in [0, 1]"),
        ({"epsilon": -0.1}, "epsilon must be in [0, 1]"),
        ({"alpha": 0.0}, "alpha must be in (0, 1]"),
        ({"alpha": 1.1}, "alpha must be in (0, 1]"),
        ({"gamma": 0.0}, "gamma must be in (0, 1]"),
        ({"plus": True, "kappa": -1.0}, "kappa must be >= 0"),
        ({"kappa": 0.1}, "set plus=True"),
    ],
)
def test_config_rejects_bad_values(kw, fragment):
    with pytest.raises(ConfigError) as e:
        DynaQConfig(**kw)
    assert fragment in str(e.value)


def test_config_defaults_are_the_books():
    cfg = DynaQConfig()
    assert (cfg.alpha, cfg.epsilon, cfg.gamma, cfg.planning_steps) == (0.1, 0.1, 0.95, 0)
    DynaQConfig(planning_steps=0, epsilon=0.0, alpha=1.0, gamma=1.0, plus=True, kappa=0.0)


# --- one update by hand ---------------------------------------------------------------------
def test_one_q_learning_update_by_hand():
    agent = _agent(planning_steps=0)
    q = np.zeros((54, 4))
    q[19] = [0.5, 0.2, 0.0, 0.1]  # max_b Q(s'=19, b) = 0.5
    q[18, 3] = 0.2
    state = dataclasses.replace(agent.init(), q=q)
    new, metrics = agent.update(state, np.random.default_rng(0), (18, 3, 0.0, 19, False))
    # target = 0 + 0.95 * 0.5 = 0.475; Q <- 0.2 + 0.1 * (0.475 - 0.2) = 0.2275
    np.testing.assert_allclose(new.q[18, 3], 0.2275, rtol=0, atol=1e-12)
    np.testing.assert_allclose(metrics["td_error"], 0.275, atol=1e-12)
    assert np.count_nonzero(new.q != q) == 1  # only Q(s, a) changed
    np.testing.assert_array_equal(state.q, q)  # the input state is untouched
    assert new.time == 1 and state.time == 0
    # Terminal: no bootstrap. target = 1, Q <- 0 + 0.1 * 1 = 0.1.
    new, _ = agent.update(state, np.random.default_rng(0), (17, 0, 1.0, 8, True))
    np.testing.assert_allclose(new.q[17, 0], 0.1, atol=1e-12)


def test_planning_repeats_the_only_modelled_update():
    # One rewarding terminal pair in the model: the real update and the n planning updates all
    # apply Q <- Q + alpha (1 - Q), so Q = 1 - (1 - alpha)^(n + 1) = 1 - 0.9^5 = 0.40951.
    agent = _agent(planning_steps=4)
    new, _ = agent.update(agent.init(), np.random.default_rng(0), (17, 0, 1.0, 8, True))
    np.testing.assert_allclose(new.q[17, 0], 1 - 0.9**5, atol=1e-12)
    assert new.num_pairs == 1 and new.pairs[0] == 17 * 4 + 0


def test_planning_replays_only_observed_pairs():
    agent = _agent(planning_steps=50)
    state, rng = agent.init(), np.random.default_rng(1)
    observed = [(35, 3, 0.0, 26, False), (26, 0, 0.0, 17, False), (17, 0, 1.0, 8, True),
                (26, 2, 0.0, 26, False)]  # (3,8) right, (2,8) up, (1,8) up, (2,8) left (wall)
    for tr in observed:
        state, _ = agent.update(state, rng, tr)
    pairs = {(s, a) for s, a, *_ in observed}
    changed = {tuple(x) for x in np.argwhere(state.q != 0)}
    assert changed and changed <= pairs
    # The value reached (2,8) and (3,8) through planning alone (each was updated for real only
    # before the goal was ever seen).
    assert state.q[26, 0] > 0 and state.q[35, 3] > 0
    assert state.num_pairs == 4
    assert sorted(state.pairs[:4].tolist()) == sorted(s * 4 + a for s, a in pairs)
    np.testing.assert_array_equal(state.known, state.tried)  # Dyna-Q models tried pairs only
    assert state.model_next[26, 2] == 26 and state.model_done[17, 0]


# --- Dyna-Q+ --------------------------------------------------------------------------------
def test_planning_target_bonus_by_hand():
    agent = make_dyna_q(DynaQConfig(plus=True, kappa=0.01), 2, 2)
    state = agent.init()
    q = np.array([[0.0, 0.0], [0.5, 0.3]])
    state = dataclasses.replace(
        state, q=q, model_next=np.array([[1, -1], [-1, -1]]), last_tried=np.array([[3, 0], [0, 0]]),
        time=12)
    # tau = 12 - 3 = 9: target = 0 + 0.01 * sqrt(9) + 0.95 * max(0.5, 0.3) = 0.03 + 0.475
    np.testing.assert_allclose(planning_target(state, 0, 0, gamma=0.95, kappa=0.01), 0.505,
                               atol=1e-12)
    np.testing.assert_allclose(planning_target(state, 0, 0, gamma=0.95, kappa=0.0), 0.475,
                               atol=1e-12)
    with pytest.raises(ValueError, match="no entry"):
        planning_target(state, 0, 1, gamma=0.95, kappa=0.01)


def test_dyna_q_plus_plans_untried_actions_with_the_bonus():
    # Two states, two actions. Eight steps have passed; now action 0 is tried in state 0 for the
    # first time and leads to state 1 with reward 0. Dyna-Q+ also models the untried (0, 1) as
    # "stay in 0, reward 0", last tried at time 0, so at time 9 its bonus is
    # kappa * sqrt(9) = 0.1 * 3 = 0.3. With alpha = 1 and gamma = 0.5 each planning update of
    # (0, 1) sets Q(0,1) = 0.3 + 0.5 * max(Q(0,0), Q(0,1)); Q(0,0) stays 0 (tau = 0, Q(1) = 0),
    # so after k draws Q(0,1) = 0.3 (1 - 0.5^k) / 0.5 -> 0.6 (k is about 100 of 200 draws).
    cfg = dict(planning_steps=200, alpha=1.0, gamma=0.5, epsilon=0.1)
    plus = make_dyna_q(DynaQConfig(plus=True, kappa=0.1, **cfg), 2, 2)
    state = dataclasses.replace(plus.init(), time=8)
    new, _ = plus.update(state, np.random.default_rng(0), (0, 0, 0.0, 1, False))
    np.testing.assert_allclose(new.q[0], [0.0, 0.6], atol=1e-12)
    assert new.known[0].all() and not new.known[1].any()
    assert new.tried[0].tolist() == [True, False] and new.model_next[0, 1] == 0
    assert new.last_tried[0].tolist() == [9, 0]
    # Plain Dyna-Q never plans the untried action.
    plain = make_dyna_q(DynaQConfig(**cfg), 2, 2)
    new, _ = plain.update(dataclasses.replace(plain.init(), time=8), np.random.default_rng(0),
                          (0, 0, 0.0, 1, False))
    np.testing.assert_array_equal(new.q, 0.0)
    assert new.known.tolist() == [[True, False], [False, False]]


# --- acting ---------------------------------------------------------------------------------
def test_greedy_action_breaks_ties_uniformly():
    rng = np.random.default_rng(0)
    picks = [greedy_action(np.array([1.0, 1.0, 0.0, 1.0]), rng) for _ in range(300)]
    counts = np.bincount(picks, minlength=4)
    assert counts[2] == 0 and counts[[0, 1, 3]].min() > 60  # about 100 each
    # A unique maximum consumes no randomness.
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert greedy_action(np.array([0.0, 2.0, 1.0, 0.0]), rng_a) == 1
    assert rng_a.random() == rng_b.random()


def test_act_is_epsilon_greedy():
    q = np.zeros((54, 4))
    q[18] = [0.0, 0.0, 0.0, 1.0]
    greedy = _agent(epsilon=0.0)
    state = dataclasses.replace(greedy.init(), q=q)
    rng = np.random.default_rng(0)
    assert {greedy.act(state, rng, 18)[0] for _ in range(50)} == {3}
    uniform = _agent(epsilon=1.0)
    counts = np.bincount([uniform.act(state, rng, 18)[0] for _ in range(400)], minlength=4)
    assert counts.min() > 60  # about 100 each: the greedy action gets no extra weight
    action, same, info = greedy.act(state, rng, 18)
    assert same is state and info == {}


# --- runs -----------------------------------------------------------------------------------
def test_same_seed_same_run_different_seed_different_run():
    agent = _agent(planning_steps=5)
    _, a = run_maze(agent, DYNA_MAZE, np.random.default_rng([3, 0]), num_episodes=3)
    _, b = run_maze(agent, DYNA_MAZE, np.random.default_rng([3, 0]), num_episodes=3)
    _, c = run_maze(agent, DYNA_MAZE, np.random.default_rng([4, 0]), num_episodes=3)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.obs, b.obs)
    assert len(a.action) != len(c.action) or not np.array_equal(a.action, c.action)


def test_first_episode_is_the_same_for_every_n():
    # Until the first reward every update leaves Q at 0, so behaviour is the same uniform random
    # walk for all n (the book: "the first episode was exactly the same for all values of n").
    firsts = [run_maze(_agent(planning_steps=n), DYNA_MAZE, np.random.default_rng(7),
                       num_episodes=1)[1] for n in (0, 5, 50)]
    for traj in firsts[1:]:
        np.testing.assert_array_equal(traj.action, firsts[0].action)
    assert firsts[0].done[-1] and firsts[0].done.sum() == 1


def test_step_budget_and_trajectory_shapes():
    state, traj = run_maze(_agent(), DYNA_MAZE, np.random.default_rng(0), num_steps=100)
    assert len(traj.reward) == 100 and state.time == 100
    assert traj.cumulative_reward[-1] == traj.done.sum() == traj.reward.sum()
    # Every step starts where the previous one ended, or at S after reaching G.
    expected_obs = np.where(traj.done[:-1], DYNA_MAZE.start_state, traj.next_obs[:-1])
    np.testing.assert_array_equal(traj.obs[1:], expected_obs)
    with pytest.raises(ValueError, match="num_episodes, num_steps"):
        run_maze(_agent(), DYNA_MAZE, np.random.default_rng(0))
    with pytest.raises(ValueError, match="do not fit"):
        run_maze(make_dyna_q(DynaQConfig(), 10, 4), DYNA_MAZE, np.random.default_rng(0),
                 num_steps=5)


def test_episode_helpers_on_a_hand_made_trajectory():
    done = np.array([False, False, True, False, True, False])
    nxt = np.array([1, 2, 9, 5, 9, 3])
    traj = Trajectory(obs=np.zeros(6, int), action=np.zeros(6, int), reward=done.astype(float),
                      next_obs=nxt, done=done)
    np.testing.assert_array_equal(episode_lengths(traj), [3, 2])  # the open last one is dropped
    np.testing.assert_array_equal(episodes_visiting(traj, [5]), [False, True])
    np.testing.assert_array_equal(episodes_visiting(traj, [1, 5]), [True, True])
    np.testing.assert_array_equal(traj.cumulative_reward, [0, 0, 1, 1, 2, 2])
    unfinished = dataclasses.replace(traj, done=np.zeros(6, bool))
    assert episode_lengths(unfinished).size == 0 and episodes_visiting(unfinished, [5]).size == 0


def test_planning_learns_the_dyna_maze_fast():
    # The book's Fig. 8.2: with n = 50 the agent is near the 14-step optimum by episode 3
    # (30-run mean about 17.5 steps; episode 1 is a random walk of about 870 steps on average).
    # Margin: mean of episodes 3-5 over 4 runs <= 25, while n = 0 is still far above 50.
    fifty = np.array([episode_lengths(run_maze(_agent(planning_steps=50), DYNA_MAZE,
                                               np.random.default_rng([0, r]), num_episodes=5)[1])
                      for r in range(4)])
    zero = np.array([episode_lengths(run_maze(_agent(planning_steps=0), DYNA_MAZE,
                                              np.random.default_rng([0, r]), num_episodes=5)[1])
                     for r in range(4)])
    assert fifty[:, 2:].mean() <= 25.0
    assert zero[:, 2:].mean() >= 50.0
    assert fifty.min() >= 14  # nothing beats the shortest path


@pytest.mark.slow
def test_dyna_q_plus_finds_the_shortcut_and_dyna_q_does_not():
    # The book's Example 8.3 budget: 6000 steps, the gap at (3, 8) opens at step 3000.
    # Measured over 30 runs (experiments/dyna_maze.py --maze shortcut): Dyna-Q+ uses the gap in
    # about 90% of its last-1000-step episodes in every run, Dyna-Q in none. Two runs, ~5 s.
    maze = make_maze("shortcut")
    gap = [maze.width * 3 + 8]
    for run in range(2):
        share = {}
        for plus in (False, True):
            cfg = DynaQConfig(planning_steps=50, alpha=1.0, plus=plus, kappa=1e-3 if plus else 0.0)
            agent = make_dyna_q(cfg, maze.num_states, NUM_ACTIONS)
            _, traj = run_maze(agent, maze, np.random.default_rng([0, run]), num_steps=6000)
            last = (np.flatnonzero(traj.done) + 1) > 5000
            share[plus] = episodes_visiting(traj, gap)[last].mean()
        assert share[True] > 0.5 and share[False] == 0.0


# --- experiments/dyna_maze.py ---------------------------------------------------------------
def _load_experiment():
    return load_script("experiments/dyna_maze.py", "dyna_maze_experiment")


@pytest.fixture(scope="module")
def experiment():
    return _load_experiment()


TINY = ["--maze", "dyna", "--runs", "2", "--episodes", "3", "--planning-steps", "0", "5",
        "--seed", "4", "--no-progress"]  # seed 4: short random first episodes


def test_experiment_smoke(experiment, tmp_path, capsys):
    out = tmp_path / "run"
    assert experiment.main([*TINY, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["maze"] == "dyna" and config["config"]["planning_steps"] == [0, 5]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["planning_steps"], r["run"]) for r in records] == [(0, 0), (0, 1), (5, 0), (5, 1)]
    assert all(len(r["steps_per_episode"]) == 3 for r in records)
    assert has_checkpoint(out, complete=True)
    assert (out / "plots" / "fig8_2_steps_per_episode.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "mean steps per episode" in printed and "n=5" in printed


def test_experiment_shortcut_smoke(experiment, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--maze", "shortcut", "--runs", "1", "--steps", "300", "--switch-step", "150",
            "--planning-steps", "5", "--no-progress", "--out", str(out)]
    assert experiment.main(argv) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["agent"] for r in records] == ["dyna_q", "dyna_q_plus"]
    for r in records:
        assert r["total_steps"] == 300 and r["total_reward"] == len(r["goal_steps"])
    assert (out / "plots" / "fig8_5_shortcut.png").exists()
    assert "Dyna-Q+ n=5" in capsys.readouterr().out


FAST = [*TINY, "--no-plots"]


def test_experiment_resume_recomputes_nothing(experiment, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert experiment.main([*FAST, "--out", str(out)]) == 0
    before = (out / "metrics.jsonl").read_text()

    def fail(*args, **kwargs):
        raise AssertionError("a finished unit was recomputed")

    monkeypatch.setattr(experiment, "run_unit", fail)
    assert experiment.main([*FAST, "--out", str(out), "--resume"]) == 0
    assert (out / "metrics.jsonl").read_text() == before


def test_experiment_resume_after_interruption_matches(experiment, tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert experiment.main([*FAST, "--out", str(full)]) == 0
    real_run_unit, calls = experiment.run_unit, []

    def interrupted(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args)
        return real_run_unit(*args)

    part = tmp_path / "part"
    monkeypatch.setattr(experiment, "run_unit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.main([*FAST, "--out", str(part)])
    # A crash between writing a record and the checkpoint leaves one record too many.
    lines = (part / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    with open(part / "metrics.jsonl", "a") as f:
        f.write(lines[-1] + "\n")
    monkeypatch.setattr(experiment, "run_unit", real_run_unit)
    assert experiment.main([*FAST, "--out", str(part), "--resume"]) == 0
    assert (part / "metrics.jsonl").read_text() == (full / "metrics.jsonl").read_text()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--maze", "spiral"], "invalid choice: 'spiral'"),
        (["--planning-steps", "5", "-1"], "planning steps must be >= 0"),
        (["--runs", "0"], "runs must be > 0"),
        (["--maze", "dyna", "--steps", "100"], "--steps and --switch-step apply"),
        (["--maze", "shortcut", "--steps", "100"], "never reaches"),
        (["--alpha", "2"], "alpha must be in (0, 1]"),
    ],
)
def test_experiment_bad_input_exits_2_with_one_line(experiment, tmp_path, capsys, argv, fragment):
    with pytest.raises(SystemExit) as e:
        experiment.main([*argv, "--out", str(tmp_path / "run")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1]
    assert not (tmp_path / "run").exists()


def test_experiment_resume_refusals(experiment, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:  # nothing to resume
        experiment.main([*FAST, "--out", str(out), "--resume"])
    assert e.value.code == 2 and "no run to resume" in capsys.readouterr().err
    assert experiment.main([*FAST, "--out", str(out)]) == 0
    with pytest.raises(SystemExit) as e:  # same directory without --resume
        experiment.main([*FAST, "--out", str(out)])
    assert e.value.code == 2 and "already holds a run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # different flags
        experiment.main([*FAST, "--runs", "3", "--out", str(out), "--resume"])
    assert e.value.code == 2 and "differs in: runs" in capsys.readouterr().err
