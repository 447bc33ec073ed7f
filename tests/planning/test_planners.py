"""Planners on problems with known optima (STYLE.md section 8)."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs.registry import EnvSpec
from prototypes.planning import PlannerConfig, evaluate_sequences, make_planner
from prototypes.planning.mppi import mppi_weights
from prototypes.types import Step


def _spec(act_dim: int = 2, bound: float = 1.0) -> EnvSpec:
    return EnvSpec(
        name="toy",
        gym_id="-",
        obs_dim=act_dim,
        act_dim=act_dim,
        action_low=(-bound,) * act_dim,
        action_high=(bound,) * act_dim,
        episode_steps=10,
        reward_fn=None,
        done_fn=None,
        obs_from_physics=None,
        sensor_bodies=(),
    )


def _quadratic_step(target):
    """State x (position); x' = x + a; reward -|x + a - target|^2. From x = 0 with horizon T,
    the return is maximised by moving to the target in the first step and staying put."""
    target = jnp.asarray(target, jnp.float32)

    def step(key, obs, action):
        del key
        nxt = obs + action
        return Step(
            obs=nxt,
            reward=-jnp.sum((nxt - target[None]) ** 2, axis=-1),
            done=jnp.zeros(obs.shape[0], bool),
        )

    return step


TINY = PlannerConfig(
    horizon=3,
    population=64,
    iterations=8,
    elites=8,
    particles=1,
    alpha=0.1,
    init_std=0.5,
    keep_elites=0.3,
    temperature=0.05,
)


def test_cem_finds_quadratic_optimum():
    target = np.array([0.3, -0.6], np.float32)
    planner = make_planner(replace(TINY, kind="cem", population=128, iterations=10), _spec())
    plan = jax.jit(lambda s, k, o: planner.plan(s, k, o, _quadratic_step(target)))
    action, state, _ = plan(planner.init(), jax.random.key(0), jnp.zeros(2))
    np.testing.assert_allclose(action, target, atol=0.05)
    # the rest of the plan stays at the target (zero moves), and it is shifted for the next call
    np.testing.assert_allclose(state.mean[:-1], np.zeros((2, 2)), atol=0.1)


def test_mppi_finds_quadratic_optimum():
    """With Gaussian noise sigma around mean m and weights exp(-|a - a*|^2 / lambda), the update
    is the product of two Gaussians: m' = (m / s2 + 2 a* / lambda) / (1 / s2 + 2 / lambda), so the
    mean contracts towards a* by lambda / (lambda + 2 s2) = 0.05 / 0.55 per iteration. MPPI keeps
    its noise fixed, so the residual is sampling noise: ~0.15 / sqrt(ESS); horizon 1 and 1024
    samples put it near 0.02."""
    target = np.array([0.3, -0.6], np.float32)
    cfg = replace(TINY, kind="mppi", horizon=1, population=1024, iterations=6, temperature=0.05)
    planner = make_planner(cfg, _spec())
    plan = jax.jit(lambda s, k, o: planner.plan(s, k, o, _quadratic_step(target)))
    for seed in range(3):
        action, _, _ = plan(planner.init(), jax.random.key(seed), jnp.zeros(2))
        np.testing.assert_allclose(action, target, atol=0.05)


@pytest.mark.parametrize("kind", ["cem", "mppi", "random"])
def test_action_bounds_respected_when_optimum_is_outside(kind):
    # target (3, -3) is outside [-1, 1]^2: the best first action is the corner (1, -1)
    planner = make_planner(replace(TINY, kind=kind, population=256), _spec())
    action, _, _ = jax.jit(lambda s, k, o: planner.plan(s, k, o, _quadratic_step([3.0, -3.0])))(
        planner.init(), jax.random.key(1), jnp.zeros(2)
    )
    assert np.all(np.abs(np.asarray(action)) <= 1.0 + 1e-6)
    if kind != "random":
        np.testing.assert_allclose(action, [1.0, -1.0], atol=0.05)


def test_random_shooting_returns_best_candidate_first_action():
    spec = _spec()
    planner = make_planner(replace(TINY, kind="random", population=32), spec)
    step = _quadratic_step([0.2, 0.1])
    key = jax.random.key(3)
    action, _, metrics = jax.jit(lambda s, k, o: planner.plan(s, k, o, step))(
        planner.init(), key, jnp.zeros(2)
    )
    # rebuild the same candidates from the same key split, then brute-force the best
    key_sample, key_eval = jax.random.split(key)
    cand = jax.random.uniform(key_sample, (32, 3, 2), minval=-1.0, maxval=1.0)
    returns = evaluate_sequences(step, key_eval, jnp.zeros(2), cand, 1)
    np.testing.assert_allclose(action, cand[int(jnp.argmax(returns)), 0])
    np.testing.assert_allclose(metrics["plan/best_return"], jnp.max(returns))


def test_linear_model_return_equals_closed_form():
    """x' = x + a, r = -|x'|^2, from x0 with constant action u for T steps:
    x_t = x0 + t u, return = -sum_{t=1..T} |x0 + t u|^2."""
    x0 = jnp.array([0.5, -1.0])
    u = jnp.array([[0.1, 0.2], [-0.3, 0.0]])  # two candidates
    T = 4
    actions = jnp.repeat(u[:, None, :], T, axis=1)
    got = evaluate_sequences(_quadratic_step([0.0, 0.0]), jax.random.key(0), x0, actions, 3)
    want = [-sum(float(jnp.sum((x0 + t * u[n]) ** 2)) for t in range(1, T + 1)) for n in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_rewards_after_done_are_dropped_and_nan_is_never_chosen():
    def step(key, obs, action):
        del key
        nxt = obs + 1.0  # obs counts steps
        reward = jnp.where(action[:, 0] > 0, jnp.nan, 1.0)  # positive actions blow up the model
        return Step(obs=nxt, reward=reward, done=nxt[:, 0] >= 2)  # done after the 2nd step

    actions = jnp.array([[[-1.0]] * 5, [[1.0]] * 5])
    ret = evaluate_sequences(step, jax.random.key(0), jnp.zeros(1), actions, 2)
    assert float(ret[0]) == 2.0  # two rewards of 1, then done
    assert float(ret[1]) == -np.inf


def test_mppi_weights_limits():
    returns = jnp.array([1.0, 3.0, 2.0, -jnp.inf])
    # lambda -> infinity: uniform over finite candidates (the plain mean of the samples)
    np.testing.assert_allclose(mppi_weights(returns, 1e9), [1 / 3, 1 / 3, 1 / 3, 0], atol=1e-6)
    # lambda -> 0: all weight on the best sample
    np.testing.assert_allclose(mppi_weights(returns, 1e-4), [0, 1, 0, 0], atol=1e-6)
    # in between: softmax(returns / lambda); at lambda = 1: e^1, e^3, e^2 normalised
    e = np.exp([1.0, 3.0, 2.0])
    np.testing.assert_allclose(mppi_weights(returns, 1.0)[:3], e / e.sum(), rtol=1e-6)


def test_mppi_update_limits_equal_plain_mean_and_best_sample():
    spec = _spec()
    step = _quadratic_step([0.4, 0.4])
    key = jax.random.key(5)
    for lam, expect in [(1e9, "mean"), (1e-6, "best")]:
        cfg = replace(TINY, kind="mppi", iterations=1, population=16, temperature=lam)
        planner = make_planner(cfg, spec)
        action, _, _ = jax.jit(lambda s, k, o, planner=planner: planner.plan(s, k, o, step))(
            planner.init(), key, jnp.zeros(2)
        )
        (key_i,) = jax.random.split(key, 1)
        key_sample, key_eval = jax.random.split(key_i)
        std = cfg.init_std
        cand = jnp.clip(std * jax.random.normal(key_sample, (16, 3, 2)), -1.0, 1.0)
        returns = evaluate_sequences(step, key_eval, jnp.zeros(2), cand, 1)
        want = cand.mean(0)[0] if expect == "mean" else cand[int(jnp.argmax(returns)), 0]
        np.testing.assert_allclose(action, want, atol=1e-5)


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_one_trace_no_python_loop_over_iterations_horizon_particles(kind):
    calls = []
    inner = _quadratic_step([0.0, 0.0])

    def counting_step(key, obs, action):
        calls.append(obs.shape)
        return inner(key, obs, action)

    cfg = replace(TINY, kind=kind, iterations=6, horizon=7, particles=3, population=10, elites=4)
    planner = make_planner(cfg, _spec())
    plan = jax.jit(lambda s, k, o: planner.plan(s, k, o, counting_step))
    state = planner.init()
    for i in range(3):
        _, state, _ = plan(state, jax.random.key(i), jnp.zeros(2))
    assert calls == [(30, 2)]  # traced once, batched over population x particles


def test_same_key_same_plan_different_key_different_plan():
    planner = make_planner(replace(TINY, kind="cem"), _spec())
    step = _quadratic_step([0.3, 0.3])
    plan = jax.jit(lambda s, k, o: planner.plan(s, k, o, step))
    a1, _, _ = plan(planner.init(), jax.random.key(0), jnp.zeros(2))
    a2, _, _ = plan(planner.init(), jax.random.key(0), jnp.zeros(2))
    a3, _, _ = plan(planner.init(), jax.random.key(1), jnp.zeros(2))
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(horizon=0), "planner.horizon must be >= 1, got 0"),
        (dict(population=-3), "planner.population must be >= 1, got -3"),
        (dict(population=10, elites=20), r"planner.elites must be in \[1, population=10\], got 20"),
        (dict(kind="beam"), "planner.kind must be cem, mppi or random"),
    ],
)
def test_config_errors_name_the_value(bad, match):
    from prototypes.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        PlannerConfig(**bad)
