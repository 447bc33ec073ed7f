"""SAC's losses and updates against hand-computed numbers (STYLE.md section 8)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prototypes.agents.sac import (
    Critic,
    SACConfig,
    actor_loss,
    alpha_loss,
    critic_loss,
    env_to_unit,
    gradient_step,
    make_sac,
    polyak_update,
    sample_tanh_gaussian,
    soft_bellman_target,
    tanh_gaussian_log_prob,
    twin_q,
    unit_to_env,
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


def _quadratic(x, c):
    """f(x) = (x - c)^2, with x^2 as aux (to check it is passed through)."""
    return (x - c) ** 2, x**2


def test_gradient_step_sgd_on_a_quadratic():
    # f(x) = (x - 3)^2 at x = 0: f = 9, f' = 2 (0 - 3) = -6; SGD lr 0.1: x = 0 - 0.1 (-6) = 0.6
    tx = optax.sgd(0.1)
    x0 = jnp.float32(0.0)
    x, opt_state, loss, aux = gradient_step(_quadratic, tx, x0, tx.init(x0), 3.0)
    np.testing.assert_allclose([x, loss, aux], [0.6, 9.0, 0.0], rtol=1e-6)
    # second step: f'(0.6) = -4.8, x = 0.6 + 0.48 = 1.08, f(0.6) = 5.76
    x, _, loss, aux = gradient_step(_quadratic, tx, x, opt_state, 3.0)
    np.testing.assert_allclose([x, loss, aux], [1.08, 5.76, 0.36], rtol=1e-6)


def test_gradient_step_adam_on_a_quadratic():
    # Adam (b1 0.9, b2 0.999, eps 1e-8), lr 0.1, f(x) = (x - 3)^2 from x = 0.
    # step 1: g = -6, m = -0.6, v = 0.036; m_hat = -6, v_hat = 36: x = 0.1 * 6 / (6 + 1e-8) = 0.1
    # step 2: g = 2 (0.1 - 3) = -5.8, m = 0.9 (-0.6) + 0.1 (-5.8) = -1.12,
    #   v = 0.999 (0.036) + 0.001 (33.64) = 0.069604; m_hat = -1.12 / 0.19 = -5.894737,
    #   v_hat = 0.069604 / 0.001999 = 34.819410, sqrt = 5.900797:
    #   x = 0.1 + 0.1 * 5.894737 / 5.900797 = 0.1998973
    # (float32 bias corrections 1 - 0.999^t are good to ~1e-5 relative, hence the tolerance)
    tx = optax.adam(0.1)
    x0 = jnp.float32(0.0)
    x, opt_state, _, _ = gradient_step(_quadratic, tx, x0, tx.init(x0), 3.0)
    np.testing.assert_allclose(x, 0.1, rtol=1e-5)
    x, _, loss, _ = gradient_step(_quadratic, tx, x, opt_state, 3.0)
    np.testing.assert_allclose([x, loss], [0.1998973, 8.41], rtol=1e-5)


def test_unit_and_env_actions_map_onto_each_other():
    low, high = jnp.array([-2.0, 0.0]), jnp.array([2.0, 1.0])
    # dim 0: -2 + (u + 1) * 2, dim 1: (u + 1) / 2
    unit = jnp.array([[-1.0, -1.0], [0.5, 0.5], [1.0, 0.0]])
    env = unit_to_env(unit, low, high)
    np.testing.assert_allclose(env, [[-2.0, 0.0], [1.0, 0.75], [2.0, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(env_to_unit(env, low, high), unit, rtol=1e-6)
    # actions outside the box are clipped to the unit box's faces
    np.testing.assert_allclose(env_to_unit(jnp.array([[3.0, -1.0]]), low, high), [[1.0, -1.0]])


def test_twin_q_applies_each_critic_to_the_same_batch():
    critic = Critic(hidden_size=8, hidden_layers=1)
    obs, act = jnp.ones((4, 3)), jnp.full((4, 2), 0.5)
    params = jax.vmap(critic.init, in_axes=(0, None, None))(
        jax.random.split(jax.random.key(0), 2), obs, act
    )
    q1, q2 = twin_q(critic.apply, params, obs, act)
    for i, q in enumerate((q1, q2)):
        one = jax.tree.map(lambda p, i=i: p[i], params)
        np.testing.assert_allclose(q, critic.apply(one, obs, act), rtol=1e-6)
    assert not np.allclose(q1, q2)  # two independent initialisations


def test_update_moves_log_alpha_by_one_adam_step_against_the_entropy_gap():
    """d alpha_loss / d log_alpha = -mean(log pi + target_entropy) = entropy - target_entropy, and
    Adam's first step is lr * sign(gradient) (|g| >> eps): from log_alpha = log 1 = 0,
    log_alpha = -3e-4 * sign(entropy + A) with target entropy -A = -2."""
    cfg = SACConfig(hidden_size=8, hidden_layers=1, batch_size=4, alpha_lr=3e-4)
    sac = make_sac(cfg, _spec())
    state = sac.init(jax.random.key(0))
    batch = Transition(
        obs=jnp.ones((4, 3)),
        action=jnp.zeros((4, 2)),
        reward=jnp.ones(4),
        next_obs=jnp.zeros((4, 3)),
        done=jnp.zeros(4, bool),
    )
    new, metrics = sac.update(state, jax.random.key(1), batch)
    gap = float(metrics["sac/entropy"]) + 2.0
    assert abs(gap) > 1e-3
    np.testing.assert_allclose(new.log_alpha, -3e-4 * np.sign(gap), rtol=1e-4)
    np.testing.assert_allclose(metrics["sac/alpha_loss"], 0.0, atol=1e-7)  # -log_alpha * (...) at 0
