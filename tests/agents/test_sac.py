"""SAC's losses and updates against hand-computed numbers (STYLE.md section 8)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.agents.sac import (
    SACConfig,
    actor_loss,
    alpha_loss,
    critic_loss,
    make_sac,
    polyak_update,
    sample_tanh_gaussian,
    soft_bellman_target,
    tanh_gaussian_log_prob,
)
from prototypes.config import ConfigError
from prototypes.envs.registry import EnvSpec
from prototypes.types import Transition


def _spec(obs_dim=3, act_dim=2, bound=2.0) -> EnvSpec:
    return EnvSpec(
        name="toy",
        gym_id="-",
        obs_dim=obs_dim,
        act_dim=act_dim,
        action_low=(-bound,) * act_dim,
        action_high=(bound,) * act_dim,
        episode_steps=10,
        reward_fn=None,
        done_fn=None,
        obs_from_physics=None,
        sensor_bodies=(),
    )


def test_soft_bellman_target():
    # y0 = 1 + 0.9 * (min(2, 1.5) - 0.2 * (-1)) = 1 + 0.9 * 1.7 = 2.53
    # y1 = 0.5 (terminal: no bootstrap)
    y = soft_bellman_target(
        reward=jnp.array([1.0, 0.5]),
        done=jnp.array([False, True]),
        next_q1=jnp.array([2.0, 3.0]),
        next_q2=jnp.array([1.5, 4.0]),
        next_log_prob=jnp.array([-1.0, 2.0]),
        alpha=jnp.float32(0.2),
        gamma=0.9,
    )
    np.testing.assert_allclose(y, [2.53, 0.5], rtol=1e-6)


def _np_tanh_gaussian_log_prob(mean, log_std, u):
    std = np.exp(log_std)
    gauss = -0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.sum(gauss - np.log(1.0 - np.tanh(u) ** 2), axis=-1)


def test_tanh_gaussian_log_prob():
    # At u = mean = 0, std 1, one dim: N(0; 0, 1) = -0.5 log(2 pi) = -0.9189385, and tanh'(0) = 1.
    lp = tanh_gaussian_log_prob(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    np.testing.assert_allclose(lp, [-0.9189385], rtol=1e-6)
    # Against the NumPy reference on moderate u (where 1 - tanh^2 is well away from 0).
    rng = np.random.default_rng(0)
    mean, log_std = rng.normal(size=(5, 3)), rng.uniform(-1, 0.5, size=(5, 3))
    u = rng.normal(size=(5, 3)) * 1.5
    np.testing.assert_allclose(
        tanh_gaussian_log_prob(jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(u)),
        _np_tanh_gaussian_log_prob(mean, log_std, u),
        rtol=1e-5,
    )
    # The stable form stays finite where the naive log(1 - tanh(u)^2) underflows to -inf.
    far = tanh_gaussian_log_prob(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.full((1, 1), 30.0))
    # -0.5 * 900 - 0.919 - 2 (log 2 - 30 - softplus(-60)) = -450.919 + 58.614 = -392.305
    np.testing.assert_allclose(far, [-450.0 - 0.9189385 - 2 * (np.log(2) - 30.0)], rtol=1e-6)


def test_sample_is_in_the_box_and_logp_matches():
    key = jax.random.key(0)
    mean, log_std = jnp.full((4, 2), 0.3), jnp.full((4, 2), -0.5)
    a, lp = sample_tanh_gaussian(key, mean, log_std)
    assert a.shape == (4, 2) and lp.shape == (4,)
    assert np.all(np.abs(np.asarray(a)) < 1.0)
    u = np.arctanh(np.asarray(a, np.float64))
    np.testing.assert_allclose(lp, _np_tanh_gaussian_log_prob(0.3, -0.5, u), rtol=1e-4)


def test_losses():
    # critic: mean((1-1)^2, (2-1)^2) + mean((0-1)^2, (2-1)^2) = 0.5 + 1 = 1.5
    np.testing.assert_allclose(
        critic_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0])), 1.5
    )
    # actor: min Q = (1, 3); mean(0.5 * (-1, 1) - (1, 3)) = mean(-1.5, -2.5) = -2
    np.testing.assert_allclose(
        actor_loss(jnp.array([2.0, 3.0]), jnp.array([1.0, 4.0]), jnp.array([-1.0, 1.0]), 0.5),
        -2.0,
    )
    # alpha: -0.1 * mean((-1, -3) + (-2)) = -0.1 * (-4) = 0.4; d/dlog_alpha = 4 > 0, so a gradient
    # step lowers alpha: the entropy 2 is above the target -2.
    val, grad = jax.value_and_grad(alpha_loss)(jnp.float32(0.1), jnp.array([-1.0, -3.0]), -2.0)
    np.testing.assert_allclose([val, grad], [0.4, 4.0], rtol=1e-6)


def test_polyak_update_exact():
    # 0.25 * 1 + 0.75 * 3 = 2.5; 0.25 * (-4) + 0.75 * 0 = -1
    out = polyak_update({"w": jnp.array([1.0, -4.0])}, {"w": jnp.array([3.0, 0.0])}, 0.25)
    np.testing.assert_array_equal(out["w"], [2.5, -1.0])


def test_update_step_and_act():
    cfg = SACConfig(hidden_size=8, hidden_layers=1, batch_size=4, tau=0.1)
    sac = make_sac(cfg, _spec())
    state = sac.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    batch = Transition(
        obs=jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
        action=jnp.asarray(rng.uniform(-2, 2, size=(4, 2)), jnp.float32),
        reward=jnp.asarray(rng.normal(size=4), jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
        done=jnp.array([False, True, False, False]),
    )
    new, metrics = sac.update(state, jax.random.key(1), batch)
    assert int(new.step) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values())
    np.testing.assert_allclose(metrics["sac/alpha"], 1.0)  # the alpha used in this step
    # target = tau * new critic + (1 - tau) * old target (= old critic at init)
    jax.tree.map(
        lambda t, c, o: np.testing.assert_allclose(t, 0.1 * c + 0.9 * o, rtol=1e-5, atol=1e-7),
        new.target_critic,
        new.critic,
        state.critic,
    )
    again, _ = sac.update(state, jax.random.key(1), batch)
    jax.tree.map(np.testing.assert_array_equal, again.actor, new.actor)  # same key, same step
    obs = jnp.zeros((5, 3))
    a = sac.act(state, jax.random.key(2), obs)
    assert a.shape == (5, 2) and np.all(np.abs(np.asarray(a)) <= 2.0)
    np.testing.assert_array_equal(
        sac.act(state, None, obs, deterministic=True), sac.act(state, None, obs, True)
    )


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"gamma": 0.0}, "sac.gamma must be in (0, 1], got 0.0"),
        ({"tau": 1.5}, "sac.tau must be in (0, 1], got 1.5"),
        ({"actor_lr": -1.0}, "sac.actor_lr must be > 0, got -1.0"),
    ],
)
def test_config_errors(kwargs, fragment):
    with pytest.raises(ConfigError) as exc:
        SACConfig(**kwargs)
    assert fragment in str(exc.value)
