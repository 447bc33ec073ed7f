"""iCEM's parts of the CEM planner: colored noise (against its exact covariance), population
decay (the batch sizes the model sees), shifted elites (kept and reused), and the quadratic
optimum still found with all of them on."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.planning import make_planner
from prototypes.planning.noise import colored_from_normals, colored_noise, power_spectrum
from tests.planning.test_planners import TINY, _quadratic_step, _spec


def _covariance(beta: float, T: int) -> np.ndarray:
    """The exact covariance of the sampler: it is linear in its standard normal draws, so
    cov = J J^T with J the Jacobian of `colored_from_normals` with respect to them."""
    n = T // 2 + 1

    def from_normals(z):
        return colored_from_normals(z[:n], z[n:], beta, T)

    J = np.asarray(jax.jacfwd(from_normals)(jnp.zeros(2 * n)))
    return J @ J.T


def _circulant_reference(beta: float, T: int) -> np.ndarray:
    """c(l) = sum_k S_k cos(2 pi k l / T) / T over all T bins, normalised to c(0) = 1 (NumPy)."""
    S_half = power_spectrum(T, beta)
    S = np.array([S_half[min(k, T - k)] for k in range(T)])
    lags = np.arange(T)
    c = np.array([np.sum(S * np.cos(2 * np.pi * np.arange(T) * l / T)) / T for l in lags])
    c = c / c[0]
    return np.array([[c[(j - i) % T] for j in range(T)] for i in range(T)])


@pytest.mark.parametrize("T", [5, 8])
def test_white_noise_at_beta_zero_and_the_colored_spectrum(T):
    np.testing.assert_allclose(_covariance(0.0, T), np.eye(T), atol=1e-6)
    for beta in (1.0, 2.0, 2.5):
        cov = _covariance(beta, T)
        np.testing.assert_allclose(np.diag(cov), np.ones(T), atol=1e-6)  # unit variance
        np.testing.assert_allclose(cov, _circulant_reference(beta, T), atol=1e-6)
    # the larger beta, the more neighbouring steps move together (smoother sequences)
    lag1 = [_covariance(beta, T)[0, 1] for beta in (0.0, 1.0, 2.0, 2.5)]
    assert abs(lag1[0]) < 1e-6 and 0 < lag1[1] < lag1[2] < lag1[3]


def test_colored_noise_is_deterministic_per_key():
    x = colored_noise(jax.random.key(3), 2.0, (4, 2, 8))
    assert x.shape == (4, 2, 8)
    np.testing.assert_array_equal(x, colored_noise(jax.random.key(3), 2.0, (4, 2, 8)))
    assert not np.allclose(x, colored_noise(jax.random.key(4), 2.0, (4, 2, 8)))


def _counting_step(target, sizes):
    inner = _quadratic_step(target)

    def step(key, obs, action):
        sizes.append(obs.shape[0])  # at trace time: the batch the model is asked for
        return inner(key, obs, action)

    return step


def test_population_decay_sets_each_iteration_size():
    # N = 64, K = 8, decay 2: 64, 32, 16, then never below 2K = 16; particles 1, horizon 3
    cfg = replace(TINY, kind="cem", population=64, elites=8, iterations=4, population_decay=2.0)
    planner = make_planner(cfg, _spec())
    sizes: list[int] = []
    step = _counting_step(np.zeros(2, np.float32), sizes)
    jax.jit(lambda s, k, o: planner.plan(s, k, o, step))(
        planner.init(), jax.random.key(0), jnp.zeros(2)
    )
    # one trace of the horizon scan per iteration (the iterations are unrolled)
    assert sizes == [64, 32, 16, 16]
    # the config reports the same sizes, and evaluations = 128 candidates x 1 particle x 3 steps
    assert cfg.iteration_sizes() == [64, 32, 16, 16]
    assert cfg.evaluations() == 128 * cfg.particles * cfg.horizon == 128 * 1 * 3


def test_shifted_elites_are_kept_and_the_optimum_is_still_found():
    target = np.array([0.3, -0.6], np.float32)
    cfg = replace(
        TINY,
        kind="cem",
        population=128,
        iterations=10,
        shift_elites=0.5,
        population_decay=1.25,
        noise_beta=2.0,
    )
    planner = make_planner(cfg, _spec())
    state = planner.init()
    # round(0.5 x 8 elites) = 4 shifted sequences of horizon 3, starting at the centre (0)
    assert state.elites.shape == (4, 3, 2)
    np.testing.assert_array_equal(state.elites, 0.0)
    plan = jax.jit(lambda s, k, o: planner.plan(s, k, o, _quadratic_step(target)))
    action, state, _ = plan(state, jax.random.key(0), jnp.zeros(2))
    np.testing.assert_allclose(action, target, atol=0.05)
    # the kept elites are final elites shifted by one step: their last step is the centre
    assert state.elites.shape == (4, 3, 2)
    np.testing.assert_array_equal(state.elites[:, -1], 0.0)
    # from the target, staying put is optimal: the second call's first action is ~0
    action2, _, _ = plan(state, jax.random.key(1), jnp.asarray(target))
    np.testing.assert_allclose(action2, np.zeros(2), atol=0.05)


def test_bad_icem_settings_name_the_value():
    from prototypes.config import ConfigError

    with pytest.raises(ConfigError, match="planner.population_decay must be >= 1, got 0.5"):
        replace(TINY, population_decay=0.5)
    with pytest.raises(ConfigError, match=r"planner.noise_beta must be in \[0, 4\], got -1"):
        replace(TINY, noise_beta=-1.0)
    with pytest.raises(ConfigError, match=r"planner.shift_elites must be in \[0, 1\], got 2"):
        replace(TINY, shift_elites=2.0)
