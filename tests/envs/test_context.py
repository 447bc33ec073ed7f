"""Context features (CARL): appended to the observation, constant in an episode; rewards, costs
and layouts still work on the longer observation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import fetch, get_spec, make
from prototypes.envs.context import (
    ContextObservation,
    context_vector,
    context_width,
    with_context,
)
from prototypes.envs.costs import push_reward
from prototypes.envs.variants import parse_variant


def test_width_and_vector_by_hand():
    v = parse_variant("pusher", "mass=B,goal=A,distractors=2")
    assert context_width(v) == 1 + 2 + 1  # settings sorted: distractors, goal, mass
    values = {"distractors": [[0.1, 0.2], [0.3, 0.4]], "goal": [0.05, -0.02], "mass": 3.0}
    np.testing.assert_array_equal(context_vector(v, values), [2.0, 0.05, -0.02, 3.0])
    assert context_width(parse_variant("pusher", "none")) == 0


def test_wrapper_appends_the_episode_values_for_every_step():
    v = parse_variant("pusher", "mass=B,damping=A")
    env = ContextObservation(make("pusher", variant=v), v)
    assert env.observation_space.shape == (25,)
    plain = make("pusher", variant=v)
    obs, info = env.reset(seed=4)
    obs0, _ = plain.reset(seed=4)
    expected = [info["variant"]["damping"], info["variant"]["mass"]]
    np.testing.assert_array_equal(obs[:23], obs0)
    np.testing.assert_array_equal(obs[23:], expected)
    for _ in range(3):
        a = np.full(7, 0.3, np.float32)
        obs, r, *_ = env.step(a)
        obs0, r0, *_ = plain.step(a)
        np.testing.assert_array_equal(obs[:23], obs0)
        np.testing.assert_array_equal(obs[23:], expected)  # constant in the episode
        assert r == r0
    obs, info = env.reset(seed=5)
    assert obs[24] == info["variant"]["mass"] != expected[1]  # a new episode, new values


def test_fetch_context_sits_after_the_goal():
    v = parse_variant("fetch_push", "friction=B")
    env = ContextObservation(make("fetch_push", variant=v), v)
    obs, info = env.reset(seed=0)
    assert obs.shape == (29,) and obs[28] == info["variant"]["friction"]


def _rewards(task):
    spec = get_spec(task)
    fns = {"task": spec.reward_fn, "done": lambda o, a, n: spec.done_fn(n).astype(jnp.float32)}
    if task == "fetch_push":
        fns.update({f"fetch_{k}": f for k, f in fetch.reward_fns(task).items()})
    else:
        fns["shaped"] = push_reward(spec.layout)
    return spec, fns


@pytest.mark.parametrize("task", ["pusher", "fetch_push"])
def test_rewards_and_costs_ignore_the_appended_features(task):
    spec, fns = _rewards(task)
    ctx = with_context(spec, 3)
    assert ctx.obs_dim == spec.obs_dim + 3 and ctx.layout.obs_dim == ctx.obs_dim
    obj = ctx.layout.entities_of_type("object")[0]
    assert ctx.layout.index_of(obj.name, "other")[-3:] == tuple(range(spec.obs_dim, ctx.obs_dim))
    # the context spec's own reward and its layout-built push reward, on random observations
    fns_ctx = {"task": ctx.reward_fn, "shaped_ctx": push_reward(ctx.layout)}
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, nxt = rng.normal(size=(2, spec.obs_dim)).astype(np.float32)
        a = rng.normal(size=spec.act_dim).astype(np.float32)
        extra = rng.normal(size=(2, 3)).astype(np.float32) * 100  # large: any leak would show
        obs_c, nxt_c = np.concatenate([obs, extra[0]]), np.concatenate([nxt, extra[1]])
        for name, fn in fns.items():
            np.testing.assert_array_equal(fn(obs_c, a, nxt_c), fn(obs, a, nxt), err_msg=name)
        np.testing.assert_array_equal(
            fns_ctx["shaped_ctx"](obs_c, a, nxt_c), push_reward(spec.layout)(obs, a, nxt)
        )
        np.testing.assert_array_equal(fns_ctx["task"](obs_c, a, nxt_c), spec.reward_fn(obs, a, nxt))


def test_zero_width_is_the_same_spec_and_bad_width_is_refused():
    spec = get_spec("pusher")
    assert with_context(spec, 0) is spec
    with pytest.raises(ValueError, match="context width must be >= 0"):
        with_context(spec, -1)


def test_arm_takes_the_context_when_there_is_no_object():
    spec = with_context(get_spec("reacher"), 2)
    assert spec.layout.index_of("arm", "other")[-2:] == (10, 11)


@pytest.mark.slow  # 10-40 s: building and compiling a model
@pytest.mark.parametrize("kind", ["ensemble", "structured"])
def test_learned_models_take_the_longer_observation(kind):
    from prototypes.models.registry import make_model, model_config
    from prototypes.types import Transition

    spec = with_context(get_spec("pusher"), 2)
    cfg = dataclasses.replace(model_config(kind)(), members=2, hidden_size=8)
    model = make_model(kind, cfg, spec)
    O = spec.obs_dim
    example = Transition(
        obs=jnp.zeros(O),
        action=jnp.zeros(7),
        reward=jnp.zeros(()),
        next_obs=jnp.zeros(O),
        done=jnp.zeros((), bool),
    )
    state = model.init(jax.random.key(0), example)
    root = model.encode(state, np.zeros(O, np.float32))
    step = model.predict(
        state, jax.random.key(1), jax.tree.map(lambda x: x[None], root), jnp.zeros((1, 7))
    )
    assert jax.tree.leaves(step.obs)[0].shape[-1] == O
