"""The probabilistic ensemble: loss, propagation modes, fitting, errors."""

from dataclasses import replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.config import ConfigError
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import TrainingDivergedError
from prototypes.models.ensemble import (
    EnsembleConfig,
    GaussianMLP,
    ensemble_loss,
    gaussian_nll,
    make_ensemble,
    predict_expectation,
    predict_ts1,
    predict_tsinf,
    training_arrays,
)
from prototypes.models.normalizer import Normalizer
from prototypes.planning import evaluate_sequences
from prototypes.types import Transition

O, A = 3, 2


def _spec() -> EnvSpec:
    return EnvSpec(
        name="lin",
        gym_id="-",
        obs_dim=O,
        act_dim=A,
        action_low=(-1.0,) * A,
        action_high=(1.0,) * A,
        episode_steps=10,
        reward_fn=lambda o, a, n: -jnp.sum(n**2),
        done_fn=lambda n: jnp.zeros((), bool),
        obs_from_physics=None,
        sensor_bodies=(),
    )


SMALL = EnsembleConfig(members=2, hidden_size=16, hidden_layers=2, max_epochs=3, batch_size=16)


def test_nll_gradient_vanishes_at_true_mean_and_variance():
    """For targets y_i, d/dmu mean((y-mu)^2 e^-lv + lv) = -2 mean(y - mu) e^-lv = 0 at mu = mean(y);
    d/dlv = 1 - mean((y-mu)^2) e^-lv = 0 at lv = log mean((y-mu)^2)."""
    y = jnp.array([[0.5], [1.5], [2.5], [3.5]])  # mean 2, variance (2.25+0.25+0.25+2.25)/4 = 1.25

    def nll(mu, lv):  # one shared mean and log-variance for all four targets
        return gaussian_nll(jnp.full((4, 1), mu), jnp.full((4, 1), lv), y)

    g_mu, g_lv = jax.grad(nll, argnums=(0, 1))(2.0, jnp.log(1.25))
    np.testing.assert_allclose(g_mu, 0.0, atol=1e-6)
    np.testing.assert_allclose(g_lv, 0.0, atol=1e-6)
    # away from it the gradient points back: d/dmu at mu = 1.5 is -2 * 0.5 / 1.25 = -0.8
    np.testing.assert_allclose(jax.grad(nll)(1.5, jnp.log(1.25)), -0.8, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_beta_nll_weights_each_entry_by_its_variance_to_the_beta(beta):
    """beta-NLL's value is mean(var^beta * ((y-mu)^2 / var + lv)); its gradient in lv still
    vanishes at the true variance, and at beta = 1 the mean's gradient is the MSE's,
    -2 (y - mu) / n, whatever the variance."""
    mu = jnp.array([[0.0, 1.0], [2.0, -1.0]])
    lv = jnp.array([[0.0, jnp.log(4.0)], [jnp.log(0.25), 1.0]])
    y = jnp.array([[1.0, 3.0], [2.5, -1.0]])
    var = np.exp(np.asarray(lv))
    r2 = (np.asarray(y) - np.asarray(mu)) ** 2
    want = np.mean(var**beta * (r2 / var + np.asarray(lv)))
    np.testing.assert_allclose(gaussian_nll(mu, lv, y, beta), want, rtol=1e-6)
    g_mu, g_lv = jax.grad(lambda m, v: gaussian_nll(m, v, y, beta), argnums=(0, 1))(mu, lv)
    # the weight is a constant: d/dmu = -2 w (y - mu) / (var n), d/dlv = w (1 - r2 / var) / n
    w, n = var**beta, mu.size
    np.testing.assert_allclose(g_mu, -2 * w * (y - mu) / var / n, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_lv, w * (1 - r2 / var) / n, rtol=1e-5, atol=1e-7)
    # entry [1, 0]: r2 = 0.25 = var, so its log-variance gradient is exactly zero
    assert float(g_lv[1, 0]) == pytest.approx(0.0, abs=1e-7)
    if beta == 1.0:
        np.testing.assert_allclose(g_mu, -2 * (y - mu) / n, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_nll_beta_trains_through_the_config():
    """The ensemble's loss reads model.nll_beta: on identical data and keys, 0.5 fits a
    different model than 0 (the plain NLL, as test_ensemble_loss_is_... checks)."""
    data = _linear_data(32, jax.random.key(0))
    fits = []
    for beta in (0.0, 0.5):
        model = make_ensemble(replace(SMALL, nll_beta=beta, max_epochs=1), _spec())
        state = model.init(jax.random.key(1), jax.tree.map(lambda x: x[0], data))
        state, metrics = model.fit(state, jax.random.key(2), data)
        fits.append(jax.tree.leaves(state.params))
    assert any(not np.array_equal(a, b) for a, b in zip(*fits, strict=True))
    with pytest.raises(ConfigError, match=r"model.nll_beta must be in \[0, 1\], got 1.5"):
        EnsembleConfig(nll_beta=1.5)


def test_logvar_stays_within_learned_bounds():
    net = GaussianMLP(out_dim=O, hidden_size=8, hidden_layers=1)
    params = net.init(jax.random.key(0), jnp.zeros((1, O + A)))
    _, logvar = net.apply(params, 1e3 * jax.random.normal(jax.random.key(1), (64, O + A)))
    # softplus bounds are soft by at most log(1 + e^-(max - min)) = log(1 + e^-10.5) ~ 2.8e-5
    assert float(logvar.max()) <= 0.5 + 3e-5 and float(logvar.min()) >= -10.0 - 1e-6


def test_tsinf_with_one_member_equals_plain_rollout():
    """E = 1: TS-inf, TS-1 are the same single Gaussian network; a hand-written rollout that samples
    obs' = obs + denorm(mu + exp(lv / 2) * eps) with the same noise gives the same return."""
    spec = _spec()
    cfg = replace(SMALL, members=1)
    key_init = jax.random.key(0)
    obs0 = jnp.array([0.2, -0.1, 0.4])
    actions = 0.3 * jax.random.normal(jax.random.key(1), (4, 5, A))  # N=4, T=5
    for prop in ("tsinf", "ts1"):
        model = make_ensemble(replace(cfg, propagation=prop), spec)
        state = model.init(key_init, None)
        state = state.replace(
            in_norm=Normalizer(jnp.full(O + A, 0.1), jnp.full(O + A, 2.0), jnp.zeros(O + A, bool)),
            out_norm=Normalizer(jnp.full(O, -0.05), jnp.full(O, 0.5), jnp.zeros(O, bool)),
        )
        got = evaluate_sequences(partial(model.predict, state), jax.random.key(2), obs0, actions, 3)
        # reference: loop over candidates, particles and steps, replaying the key schedule
        net = GaussianMLP(out_dim=O, hidden_size=cfg.hidden_size, hidden_layers=cfg.hidden_layers)
        params = jax.tree.map(lambda p: p[0], state.params)
        keys = jax.random.split(jax.random.key(2), 5)
        obs = jnp.broadcast_to(obs0, (12, O))
        acts = jnp.repeat(actions, 3, axis=0)
        total = jnp.zeros(12)
        for t in range(5):
            _, key_noise = jax.random.split(keys[t])
            x = (jnp.concatenate([obs, acts[:, t]], -1) - 0.1) / 2.0
            mu, lv = net.apply(params, x)
            eps = jax.random.normal(key_noise, (1, 12, O))[0]
            if prop == "ts1":  # rows were permuted, which with one member only reorders noise
                perm_key, _ = jax.random.split(keys[t])
                perm = jax.random.permutation(perm_key, 12)
                eps = jnp.zeros_like(eps).at[perm].set(eps)
            obs = obs + (mu + jnp.exp(lv / 2) * eps) * 0.5 - 0.05
            total = total - jnp.sum(obs**2, -1)
        np.testing.assert_allclose(got, total.reshape(4, 3).mean(1), rtol=1e-5, atol=1e-5)


def test_tsinf_assigns_row_b_to_member_b_mod_E():
    """Give member e an output bias of 10 * e (zero weights elsewhere, zero noise): next obs of row
    b must be obs + 10 * (b % E)."""
    E = 3
    model = make_ensemble(replace(SMALL, members=E, propagation="tsinf"), _spec())
    state = model.init(jax.random.key(0), None)
    params = jax.tree.map(jnp.zeros_like, state.params)
    out_layer = f"Dense_{SMALL.hidden_layers}"
    bias = params["params"][out_layer]["bias"]
    bias = bias.at[:, :O].set(10.0 * jnp.arange(E)[:, None]).at[:, O:].set(-1e3)
    params["params"][out_layer]["bias"] = bias
    params["params"]["min_logvar"] = jnp.full((E, O), -60.0)
    params["params"]["max_logvar"] = jnp.full((E, O), -50.0)
    state = state.replace(params=params)
    B = 7  # not a multiple of E: padding rows must not shift the assignment
    step = model.predict(state, jax.random.key(1), jnp.zeros((B, O)), jnp.zeros((B, A)))
    np.testing.assert_allclose(step.obs[:, 0], 10.0 * (np.arange(B) % E), atol=1e-3)
    # expectation mode averages the members: (0 + 10 + 20) / 3 = 10 for every row
    exp_model = make_ensemble(replace(SMALL, members=E, propagation="expectation"), _spec())
    step = exp_model.predict(state, jax.random.key(1), jnp.zeros((B, O)), jnp.zeros((B, A)))
    np.testing.assert_allclose(step.obs[:, 0], 10.0, atol=1e-3)


def test_constant_delta_dimensions_are_predicted_exactly():
    """A dimension that never changed in the data (like a goal position) must not drift: the
    model predicts its constant delta exactly, whatever the network outputs."""
    model = make_ensemble(replace(SMALL, propagation="ts1"), _spec())
    data = _linear_data(64, jax.random.key(0))
    data = data.replace(next_obs=data.next_obs.at[:, 2].set(data.obs[:, 2] + 0.25))
    state, _ = model.fit(model.init(jax.random.key(1), None), jax.random.key(2), data)
    obs = jax.random.normal(jax.random.key(3), (9, O))
    step = jax.jit(model.predict)(state, jax.random.key(4), obs, jnp.zeros((9, A)))
    np.testing.assert_allclose(step.obs[:, 2], obs[:, 2] + 0.25, atol=1e-6)
    assert bool(state.out_norm.constant[2]) and not bool(state.out_norm.constant[0])


def _linear_data(n: int, key) -> Transition:
    """next = obs + 0.5 * [a, 0] + 0.1 * obs[::-1]: a smooth map a small MLP learns well."""
    k1, k2 = jax.random.split(key)
    obs = jax.random.uniform(k1, (n, O), minval=-1, maxval=1)
    act = jax.random.uniform(k2, (n, A), minval=-1, maxval=1)
    nxt = obs + 0.5 * jnp.concatenate([act, jnp.zeros((n, O - A))], -1) + 0.1 * obs[:, ::-1]
    return Transition(
        obs=obs, action=act, reward=jnp.zeros(n), next_obs=nxt, done=jnp.zeros(n, bool)
    )


@pytest.mark.slow
def test_fit_learns_a_linear_system_with_early_stopping():
    cfg = replace(
        SMALL,
        members=2,
        hidden_size=32,
        max_epochs=60,
        patience=5,
        batch_size=32,
        propagation="expectation",
    )
    model = make_ensemble(cfg, _spec())
    data = _linear_data(1000, jax.random.key(0))
    state, metrics = model.fit(model.init(jax.random.key(1), None), jax.random.key(2), data)
    test = _linear_data(200, jax.random.key(3))
    pred = model.predict(state, jax.random.key(4), test.obs, test.action).obs
    # the delta has std ~0.3; a fitted model gets its error well under a tenth of that
    rmse = float(jnp.sqrt(jnp.mean((pred - test.next_obs) ** 2)))
    assert rmse < 0.03, rmse
    assert metrics["model/epochs"] <= 60 and metrics["model/holdout_mse"] < 0.05


def test_fit_is_deterministic_per_key():
    model = make_ensemble(SMALL, _spec())
    data = _linear_data(100, jax.random.key(0))
    s0 = model.init(jax.random.key(1), None)
    a, _ = model.fit(s0, jax.random.key(2), data)
    b, _ = model.fit(s0, jax.random.key(2), data)
    c, _ = model.fit(s0, jax.random.key(3), data)
    leaves = lambda s: np.concatenate([np.ravel(x) for x in jax.tree.leaves(s.params)])
    np.testing.assert_array_equal(leaves(a), leaves(b))
    assert not np.array_equal(leaves(a), leaves(c))


def test_nan_in_training_data_stops_with_a_clear_error():
    model = make_ensemble(SMALL, _spec())
    data = _linear_data(100, jax.random.key(0))
    data = data.replace(next_obs=data.next_obs.at[5, 1].set(jnp.nan))
    with pytest.raises(TrainingDivergedError, match="model training loss became nan at epoch 1"):
        model.fit(model.init(jax.random.key(1), None), jax.random.key(2), data)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(members=0), "model.members must be >= 1, got 0"),
        (dict(holdout=1.0), r"model.holdout must be in \[0, 1\), got 1.0"),
        (dict(propagation="ts2"), "model.propagation must be ts1, tsinf or expectation"),
    ],
)
def test_config_errors(bad, match):
    from prototypes.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        EnsembleConfig(**bad)


# --- the parts of make_ensemble, each on its own ----------------------------------------------


def _members(E: int = 3):
    """E members of a small GaussianMLP with random params, and normalised inputs x [7, O + A]."""
    net = GaussianMLP(out_dim=O, hidden_size=8, hidden_layers=1)
    params = jax.jit(jax.vmap(net.init, in_axes=(0, None)))(
        jax.random.split(jax.random.key(0), E), jnp.zeros((1, O + A))
    )
    x = jax.random.normal(jax.random.key(1), (7, O + A))  # B = 7: not a multiple of E
    return net, params, x


def _member_outputs(net, params, x, e):
    """Member e's (mean, logvar) [B, O], applied on its own (the loop reference)."""
    mean, logvar = net.apply(jax.tree.map(lambda p: p[e], params), x)
    return np.asarray(mean), np.asarray(logvar)


def test_predict_expectation_is_the_mean_over_members_of_their_means():
    net, params, x = _members()
    got = predict_expectation(net.apply, params, jax.random.key(2), x)
    want = np.mean([_member_outputs(net, params, x, e)[0] for e in range(3)], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # no sampling: the key does not matter
    np.testing.assert_array_equal(got, predict_expectation(net.apply, params, jax.random.key(3), x))


def test_predict_tsinf_sends_row_b_to_member_b_mod_E_with_the_documented_noise():
    """Row b = 3 m + e goes to member e, slot m; its noise is normal(split(key)[1], [E, M, O])[e, m]
    with M = ceil(7 / 3) = 3 (two padding rows)."""
    net, params, x = _members()
    key = jax.random.key(4)
    got = np.asarray(predict_tsinf(net.apply, params, key, x))
    noise = np.asarray(jax.random.normal(jax.random.split(key)[1], (3, 3, O)))
    for b in range(7):
        mean, logvar = _member_outputs(net, params, x, b % 3)
        want = mean[b] + np.exp(0.5 * logvar[b]) * noise[b % 3, b // 3]
        np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-6)


def test_predict_ts1_sends_row_perm_j_to_member_j_mod_E():
    """perm = permutation(split(key)[0], B): row perm[j] takes TS-inf's place j, so member j % E
    with noise[j % E, j // E] from split(key)[1]."""
    net, params, x = _members()
    key = jax.random.key(5)
    key_perm, key_noise = jax.random.split(key)
    got = np.asarray(predict_ts1(net.apply, params, key, x))
    perm = np.asarray(jax.random.permutation(key_perm, 7))
    noise = np.asarray(jax.random.normal(key_noise, (3, 3, O)))
    for j, b in enumerate(perm):
        mean, logvar = _member_outputs(net, params, x, j % 3)
        want = mean[b] + np.exp(0.5 * logvar[b]) * noise[j % 3, j // 3]
        np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(perm, np.arange(7))  # the key really reassigned rows
    other = np.asarray(predict_ts1(net.apply, params, jax.random.key(6), x))
    assert not np.array_equal(got, other)


def test_ensemble_loss_is_the_members_nll_sum_plus_the_bounds_penalty():
    """At init every member has max_logvar 0.5 and min_logvar -10 in each of O = 3 dims, so the
    penalty is 0.01 * (3 * 3 * 0.5 - 3 * 3 * (-10)) / 3 = 0.01 * 94.5 / 3 = 0.315."""
    net, params, _ = _members()
    x = jax.random.normal(jax.random.key(7), (3, 4, O + A))  # [E, M, I]: member e sees x[e]
    y = jax.random.normal(jax.random.key(8), (3, 4, O))
    total, metrics = ensemble_loss(net.apply, params, x, y, 0.01)
    nll = []
    for e in range(3):
        mean, logvar = _member_outputs(net, params, x[e], e)
        nll.append(np.mean((np.asarray(y[e]) - mean) ** 2 * np.exp(-logvar) + logvar))
    np.testing.assert_allclose(total, np.sum(nll) + 0.315, rtol=1e-5)
    np.testing.assert_allclose(metrics["nll"], np.mean(nll), rtol=1e-5)


def test_training_arrays_are_standardised_and_padded():
    data = _linear_data(100, jax.random.key(0))
    x, y, in_norm, _ = training_arrays(data)
    assert x.shape == (128, O + A) and y.shape == (128, O)  # 100 rows padded to 2^7
    np.testing.assert_allclose(np.mean(x[:100], axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.std(x[:100], axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x[100:], 0.0)
    np.testing.assert_allclose(in_norm.mean[:O], np.mean(data.obs, axis=0), atol=1e-6)
