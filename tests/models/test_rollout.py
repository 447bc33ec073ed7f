"""Multi-step fine-tuning (prototypes/models/rollout.py): windows and open-loop errors by hand;
on a linear system inside the model class the fine-tuning finds the true coefficient from two
wrong starts; the flat ensemble's fit runs it from its config (and not at the default 0)."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from prototypes.config import ConfigError
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.models.rollout import make_finetune_rollout, rollout_errors, rollout_windows
from prototypes.types import Transition
from tests.models.test_ensemble import SMALL, _spec


@struct.dataclass
class Toy:
    params: dict  # {"w": [E, 1]}: member e predicts next = w_e * obs + action


def toy_step(state: Toy, obs, action):
    return state.params["w"][0][None] * obs + action


def _episodes(lengths, w_true=0.9, seed=0) -> Transition:
    """Episodes stored one after another: obs' = w_true * obs + action, 1-d."""
    rng = np.random.default_rng(seed)
    obs, act, nxt = [], [], []
    for n in lengths:
        o = rng.uniform(-1, 1)
        for _ in range(n):
            a = rng.uniform(-0.3, 0.3)
            obs.append([o])
            act.append([a])
            o = w_true * o + a
            nxt.append([o])
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    n = len(obs)
    return Transition(f(obs), f(act), np.zeros(n, np.float32), f(nxt), np.zeros(n, bool))


def test_windows_never_cross_an_episode_end():
    data = _episodes([4, 3])  # rows 0-3 and 4-6
    np.testing.assert_array_equal(rollout_windows(data.obs, data.next_obs, 3), [0, 1, 4])
    np.testing.assert_array_equal(rollout_windows(data.obs, data.next_obs, 1), np.arange(7))
    np.testing.assert_array_equal(rollout_windows(data.obs, data.next_obs, 4), [0])
    assert rollout_windows(data.obs, data.next_obs, 5).size == 0


def test_open_loop_errors_by_hand():
    """Two members w = 0.5 and 2, from obs 1 under actions 0.1, 0.2, against targets 0.6, 0.4
    (scale 0.5): member 0 predicts 0.6, then 0.3 + 0.2 = 0.5: ((0 / 0.5)^2 + (0.1 / 0.5)^2) =
    0.04; member 1 predicts 2.1, then 4.4: (1.5 / 0.5)^2 + (4 / 0.5)^2 = 9 + 64 = 73."""
    params = {"w": jnp.array([[0.5], [2.0]])}
    err = rollout_errors(
        toy_step,
        Toy(params),
        params,
        jnp.array([[1.0]]),
        jnp.array([[[0.1], [0.2]]]),
        jnp.array([[[0.6], [0.4]]]),
        jnp.array([0.5]),
    )
    np.testing.assert_allclose(err, [[0.04], [73.0]], rtol=1e-6)


def test_finetuning_finds_the_true_linear_dynamics():
    """Data from obs' = 0.9 obs + action lie in the model class: the open-loop loss is zero only
    at w = 0.9, so both members, started at 0.5 and 1.2, end there and the held-out error
    vanishes."""
    data = _episodes([20] * 10)
    finetune = make_finetune_rollout(
        toy_step, horizon=5, steps=300, learning_rate=0.02, batch_size=16, holdout=0.2
    )
    state = Toy({"w": jnp.array([[0.5], [1.2]])})
    out, metrics = finetune(state, jax.random.key(0), data)
    np.testing.assert_allclose(out.params["w"][:, 0], [0.9, 0.9], atol=1e-3)
    assert metrics["model/rollout_windows"] == 10 * (20 - 5 + 1)
    assert metrics["model/rollout_error_after"] < 1e-4 < metrics["model/rollout_error_before"]
    assert 0 < metrics["model/rollout_best_step"] <= 300


def test_a_fit_that_cannot_improve_keeps_its_start_and_says_so():
    """At learning rate 0 the parameters never move, so no check improves on the start: the
    one-step fit is kept unchanged and the best step is 0."""
    finetune = make_finetune_rollout(
        toy_step, horizon=5, steps=50, learning_rate=0.0, batch_size=8, holdout=0.2
    )
    state = Toy({"w": jnp.array([[0.5], [1.2]])})
    out, metrics = finetune(state, jax.random.key(0), _episodes([20] * 4))
    np.testing.assert_array_equal(out.params["w"], state.params["w"])
    assert metrics["model/rollout_best_step"] == 0.0
    assert metrics["model/rollout_error_after"] == metrics["model/rollout_error_before"] > 0


def test_too_few_windows_leave_the_state_as_it_is():
    finetune = make_finetune_rollout(
        toy_step, horizon=5, steps=10, learning_rate=0.1, batch_size=4, holdout=0.1
    )
    state = Toy({"w": jnp.array([[0.5]])})
    out, metrics = finetune(state, jax.random.key(0), _episodes([5, 4]))  # one window
    assert out is state and metrics == {"model/rollout_windows": 1.0}


@pytest.mark.slow
def test_the_ensemble_fine_tunes_from_its_config():
    """rollout_horizon 3 on two chained 10-step episodes: 2 x 8 windows, and no member ends
    worse on the held-out windows; at the default 0 the fit reports no rollout at all."""
    rng = np.random.default_rng(0)
    obs, act, nxt = [], [], []
    for _ in range(2):
        o = rng.uniform(-1, 1, 3)
        for _ in range(10):
            a = rng.uniform(-1, 1, 2)
            n = o + 0.5 * np.concatenate([a, [0.0]]) + 0.1 * o[::-1]
            obs.append(o), act.append(a), nxt.append(n)
            o = n
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    data = Transition(f(obs), f(act), np.zeros(20, np.float32), f(nxt), np.zeros(20, bool))
    for horizon in (0, 3):
        cfg = replace(SMALL, rollout_horizon=horizon, rollout_steps=25)
        model = make_ensemble(cfg, _spec())
        state = model.init(jax.random.key(1), jax.tree.map(lambda x: x[0], data))
        _, metrics = model.fit(state, jax.random.key(2), data)
        if horizon == 0:
            assert not any(k.startswith("model/rollout") for k in metrics)
        else:
            assert metrics["model/rollout_windows"] == 16
            assert metrics["model/rollout_error_after"] <= metrics["model/rollout_error_before"]
    with pytest.raises(ConfigError, match="model.rollout_horizon must be >= 0 .0 is off., got -1"):
        EnsembleConfig(rollout_horizon=-1)
