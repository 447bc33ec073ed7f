"""The model registry: every kind built in one place, a new kind with one registration line."""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.config import arg
from prototypes.envs import get_spec, make
from prototypes.models import registry
from prototypes.models.base import WorldModel
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.types import Step, Transition


@dataclass(frozen=True)
class ToyConfig:
    gain: float = arg(0.5, "next obs = obs + gain * action (first A entries)")


def _make_toy(cfg: ToyConfig, spec) -> WorldModel:
    def predict(state, key, obs, action):
        del state, key
        nxt = obs.at[:, : spec.act_dim].add(cfg.gain * action)
        return Step(obs=nxt, reward=-jnp.sum(nxt**2, axis=-1), done=jnp.zeros(obs.shape[0], bool))

    return WorldModel(
        init=lambda key, example: (), predict=predict, fit=lambda s, k, d: (s, {}), name="toy"
    )


@pytest.fixture
def toy_kind():
    registry.register_model("toy", ToyConfig, lambda cfg, spec, env: _make_toy(cfg, spec), "toy")
    yield "toy"
    del registry._KINDS["toy"]


def _example(spec) -> Transition:
    z = jnp.zeros(spec.obs_dim, jnp.float32)
    a = jnp.zeros(spec.act_dim, jnp.float32)
    return Transition(obs=z, action=a, reward=jnp.zeros(()), next_obs=z, done=jnp.zeros((), bool))


def test_builtin_kinds_and_their_configs():
    assert {"ensemble", "oracle"} <= set(registry.model_kinds())
    assert registry.model_config("ensemble") is EnsembleConfig
    assert registry.model_config("oracle") is registry.OracleConfig


def test_ensemble_from_registry_equals_direct_build():
    spec = get_spec("reacher")
    cfg = EnsembleConfig(members=2, hidden_size=8, hidden_layers=1)
    a, b = registry.make_model("ensemble", cfg, spec), make_ensemble(cfg, spec)
    key = jax.random.key(0)
    sa, sb = a.init(key, _example(spec)), b.init(key, _example(spec))
    obs = jnp.ones((4, spec.obs_dim)) * 0.1
    act = jnp.ones((4, spec.act_dim)) * 0.2
    out_a, out_b = a.predict(sa, key, obs, act), b.predict(sb, key, obs, act)
    np.testing.assert_array_equal(out_a.obs, out_b.obs)
    np.testing.assert_array_equal(out_a.reward, out_b.reward)


def test_a_registered_kind_is_built_with_its_config(toy_kind):
    spec = get_spec("reacher")
    assert toy_kind in registry.model_kinds()
    model = registry.make_model(toy_kind, ToyConfig(gain=2.0), spec)
    obs = jnp.zeros((1, spec.obs_dim))
    out = model.predict((), None, obs, jnp.asarray([[0.5, -1.0]]))
    # gain 2: the first two entries move by 2 * (0.5, -1) = (1, -2); reward -(1 + 4) = -5
    np.testing.assert_allclose(out.obs[0, :2], [1.0, -2.0])
    np.testing.assert_allclose(out.reward, [-5.0])
    # no config: the kind's defaults (gain 0.5)
    out = registry.make_model(toy_kind, None, spec).predict((), None, obs, jnp.ones((1, 2)))
    np.testing.assert_allclose(out.obs[0, :2], [0.5, 0.5])


def test_oracle_from_registry_reads_the_live_env():
    spec = get_spec("reacher")
    env = make("reacher")
    obs, _ = env.reset(seed=3)
    model = registry.make_model("oracle", None, spec, env)
    root = model.encode(model.init(None, None), obs)
    action = np.asarray([0.3, -0.2], np.float32)
    out = model.predict((), None, jax.tree.map(lambda x: x[None], root), jnp.asarray(action[None]))
    next_obs, reward, *_ = env.step(action)
    np.testing.assert_allclose(out.obs.obs[0], next_obs, atol=1e-5)
    np.testing.assert_allclose(out.reward[0], reward, atol=1e-5)


def test_bad_requests_name_the_value_and_the_choices():
    spec = get_spec("reacher")
    # the message lists every registered kind (the built-ins, plus any a test registered)
    assert {"ensemble", "oracle"} <= set(registry.model_kinds())
    kinds = ", ".join(registry.model_kinds())
    with pytest.raises(ValueError, match=f"unknown model 'nope': choose from {kinds}$"):
        registry.make_model("nope", None, spec)
    with pytest.raises(
        ValueError,
        match="model 'ensemble' takes a config of class EnsembleConfig, got OracleConfig",
    ):
        registry.make_model("ensemble", registry.OracleConfig(), spec)
    with pytest.raises(ValueError, match="needs the live env"):
        registry.make_model("oracle", None, spec)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        registry.OracleConfig(threads=0)


def test_check_model_refuses_batched_planning_on_one_live_env():
    oracle, ensemble = registry.OracleConfig(), EnsembleConfig()
    registry.check_model("ensemble", ensemble, "reacher", num_envs=8)  # learned: any batch
    registry.check_model("oracle", oracle, "reacher", num_envs=1)
    with pytest.raises(ValueError, match="^num_envs 8: model 'oracle' reads one live env"):
        registry.check_model("oracle", oracle, "reacher", num_envs=8)
    with pytest.raises(ValueError, match="^num_envs must be >= 1, got 0$"):
        registry.check_model("ensemble", ensemble, "reacher", num_envs=0)


def test_a_config_must_be_a_defaulted_dataclass():
    @dataclass(frozen=True)
    class NoDefault:
        width: int

    with pytest.raises(TypeError, match="must be a dataclass with every field defaulted"):
        registry.register_model("bad", NoDefault, lambda c, s, e: None, "bad")
    with pytest.raises(TypeError, match="must be a dataclass"):
        registry.register_model("bad", dict, lambda c, s, e: None, "bad")
    assert "bad" not in registry.model_kinds()
