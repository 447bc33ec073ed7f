"""The structured (graph network) ensemble: known answers, shapes, fitting, errors."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.config import ConfigError, declared_defaults
from prototypes.envs import ALL_TASKS, get_spec
from prototypes.envs.fetch import TABLE
from prototypes.envs.layout import ARM, GOAL, OBJECT, Entity, EntityLayout
from prototypes.envs.registry import EnvSpec
from prototypes.models import registry
from prototypes.models.ensemble import ensemble_loss
from prototypes.models.structured import (
    GraphNet,
    StructuredConfig,
    _column_groups,
    compile_graph,
    contact_pairs,
    contact_separation,
    fit_prior,
    graph_inputs,
    graph_targets,
    make_structured,
    pooled_normalizer,
    prior_outputs,
    project_contacts,
    solid_extent,
    transfer_state,
)
from prototypes.types import Transition

# The graph tests train with the plain NLL and no rollout fine-tuning or table top (the
# defaults before 2026-12-05): what they check is the graph, and the levers have tests of their own
TINY = StructuredConfig(
    members=2,
    hidden_size=8,
    hidden_layers=1,
    max_epochs=3,
    batch_size=16,
    nll_beta=0.0,
    rollout_horizon=0,
    surface_features=False,
)


def _spec(layout: EntityLayout, act_dim: int = 2) -> EnvSpec:
    return EnvSpec(
        name="toy",
        gym_id="-",
        obs_dim=layout.obs_dim,
        act_dim=act_dim,
        action_low=(-1.0,) * act_dim,
        action_high=(1.0,) * act_dim,
        episode_steps=10,
        reward_fn=lambda o, a, n: -jnp.sum(n**2),
        done_fn=lambda n: jnp.zeros((), bool),
        layout=layout,
    )


def _two_objects(p: int) -> EntityLayout:
    """An arm, two objects of one type and a goal with p-d positions and velocities: obs
    [arm pos, vel | obj1 pos, vel | obj2 pos, vel | goal pos], 7 p entries."""
    return EntityLayout(
        entities=(
            Entity("arm", ARM, position=slice(0, p), velocity=slice(p, 2 * p)),
            Entity("obj1", OBJECT, position=slice(2 * p, 3 * p), velocity=slice(3 * p, 4 * p)),
            Entity("obj2", OBJECT, position=slice(4 * p, 5 * p), velocity=slice(5 * p, 6 * p)),
            Entity("goal", GOAL, position=slice(6 * p, 7 * p)),
        ),
        obs_dim=7 * p,
    )


TWO_OBJECTS = _two_objects(2)  # planar


def _randomise(state, key, scale: float = 0.5):
    """Every parameter replaced by scale * N(0, 1) (so biases and gates are not trivially 0)."""
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(key, len(leaves))
    new = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return state.replace(params=jax.tree.unflatten(tree, new))


def _random_pooled_state(model, graph):
    """A random state (`_randomise`) with random per-type statistics, pooled over same-type
    entities as `fit` computes them (which keeps permutations exact), and a random prior."""
    state = _randomise(model.init(jax.random.key(0), None), jax.random.key(1))
    keys_in, (keys_out, center) = _column_groups(graph)
    x_raw = np.asarray(jax.random.normal(jax.random.key(4), (16, graph.in_dim)))
    y_raw = np.asarray(jax.random.normal(jax.random.key(5), (16, graph.out_dim)))
    return state.replace(
        in_norm=pooled_normalizer(2.0 * x_raw + 1.0, keys_in),
        out_norm=pooled_normalizer(0.5 * y_raw - 0.2, keys_out, center),
        prior=0.3 * jax.random.normal(jax.random.key(6), state.prior.shape),
    )


@pytest.fixture(scope="module")
def push():
    """FetchPush models in the three propagation modes, one random state, jitted predicts (built
    once: compiling the graph network dominates these tests)."""
    spec = get_spec("fetch_push")
    models = {p: make_structured(replace(TINY, propagation=p), spec) for p in PROPAGATIONS}
    state = _randomise(models["ts1"].init(jax.random.key(0), None), jax.random.key(1))
    return state, {p: jax.jit(m.predict) for p, m in models.items()}


PROPAGATIONS = ("ts1", "tsinf", "expectation")


def test_permuting_same_type_entities_permutes_the_predictions():
    spec = _spec(TWO_OBJECTS)
    model = make_structured(replace(TINY, propagation="expectation"), spec)
    state = _random_pooled_state(model, compile_graph(TWO_OBJECTS, 2, lookahead=True))
    obs = jax.random.normal(jax.random.key(2), (5, 14))
    action = jax.random.normal(jax.random.key(3), (5, 2))
    swap = np.r_[0:4, 8:12, 4:8, 12:14]  # obj1 <-> obj2
    predict = jax.jit(model.predict)
    out = predict(state, jax.random.key(5), obs, action).obs
    out_swapped = predict(state, jax.random.key(5), obs[:, swap], action).obs
    np.testing.assert_allclose(out_swapped, out[:, swap], atol=1e-6)
    assert float(jnp.max(jnp.abs(out[:, 4:8] - out[:, 8:12]))) > 1e-3  # the objects differ


def test_zeroed_interaction_network_leaves_an_untouched_object_exactly_still(push):
    """FetchPush with the edge network's parameters zero: no message reaches the object, so its
    mean delta (position, rotation, velocities) is exactly 0 while the gripper moves; the
    object's relative entry is recomputed as next object - next gripper, and its linear velocity
    entry, which the env gives relative to the gripper's, keeps the world velocity unchanged."""
    state, predict = push
    params = jax.tree.map(lambda p: p, state.params)  # a copy of the dict structure
    params["params"]["edge"] = jax.tree.map(jnp.zeros_like, params["params"]["edge"])
    # non-trivial output statistics: the object's columns are scaled, never shifted
    out_norm = state.out_norm.replace(
        std=jnp.full(22, 0.3), mean=jnp.concatenate([jnp.full(10, 0.1), jnp.zeros(12)])
    )
    state = state.replace(params=params, out_norm=out_norm)
    obs = jax.random.normal(jax.random.key(2), (6, 28))
    action = jax.random.uniform(jax.random.key(3), (6, 4), minval=-1, maxval=1)
    nxt = predict["expectation"](state, jax.random.key(4), obs, action).obs
    still = np.r_[3:6, 11:14, 17:20]  # object position, rotation, angular velocity
    np.testing.assert_array_equal(nxt[:, still], obs[:, still])
    world = obs[:, 14:17] + obs[:, 20:23]  # object_velp is relative to grip_velp
    np.testing.assert_allclose(nxt[:, 14:17] + nxt[:, 20:23], world, atol=1e-6)
    np.testing.assert_array_equal(nxt[:, 25:28], obs[:, 25:28])  # the goal never moves
    assert float(jnp.min(jnp.abs(nxt[:, 0:3] - obs[:, 0:3]))) > 0  # the gripper does
    np.testing.assert_allclose(nxt[:, 6:9], nxt[:, 3:6] - nxt[:, 0:3], atol=1e-6)


def test_one_entity_reduces_to_a_per_entity_mlp():
    """One arm entity: no edges, and each member is silu(Dense) then hidden_layers x silu(Dense)
    then Dense on [velocity, action], predicting the [position, velocity] delta."""
    layout = EntityLayout(
        entities=(Entity("arm", ARM, position=slice(0, 2), velocity=slice(2, 4)),), obs_dim=4
    )
    cfg = replace(TINY, members=1, hidden_layers=1, propagation="expectation")
    model = make_structured(replace(cfg, kinematic_prior=False), _spec(layout))
    state = _randomise(model.init(jax.random.key(0), None), jax.random.key(1))
    obs = np.asarray(jax.random.normal(jax.random.key(2), (3, 4)))
    action = np.asarray(jax.random.normal(jax.random.key(3), (3, 2)))
    got = jax.jit(model.predict)(state, jax.random.key(4), obs, action).obs - obs
    p = jax.tree.map(lambda w: np.asarray(w[0], np.float64), state.params)["params"]

    def silu(v):
        return v / (1 + np.exp(-v))

    h = silu(np.c_[obs[:, 2:4], action] @ p["encoder_arm"]["kernel"] + p["encoder_arm"]["bias"])
    dec = p["decoder_arm"]
    h = silu(h @ dec["Dense_0"]["kernel"] + dec["Dense_0"]["bias"])
    out = h @ dec["Dense_1"]["kernel"] + dec["Dense_1"]["bias"]
    np.testing.assert_allclose(got, out[:, :4], rtol=1e-5, atol=1e-5)


def test_nll_gradient_vanishes_at_the_true_mean_and_variance():
    """Targets mean +- exp(logvar / 2) around the network's own prediction: per entry
    d/dmean [(y - m)^2 e^-lv + lv] = -2 (y - m) e^-lv sums to 0 over the +- pair, and
    d/dlv = 1 - (y - m)^2 e^-lv = 1 - 1 = 0, so the gradient of the NLL (penalty off) w.r.t.
    every parameter of the graph network vanishes."""
    graph = compile_graph(get_spec("fetch_push").layout, 4)
    net = GraphNet(graph=graph, hidden_size=8, hidden_layers=1)
    params = jax.jit(jax.vmap(net.init, in_axes=(0, None)))(
        jax.random.split(jax.random.key(0), 2), jnp.zeros((1, graph.in_dim))
    )
    x = jax.random.normal(jax.random.key(1), (2, 4, graph.in_dim))
    mean, logvar = jax.jit(jax.vmap(net.apply))(params, x)  # jitted: one compile, not per op
    sd = jnp.exp(logvar / 2)
    xs, ys = jnp.concatenate([x, x], 1), jnp.concatenate([mean + sd, mean - sd], 1)
    nll_grad = jax.jit(jax.grad(lambda p, y: ensemble_loss(net.apply, p, xs, y, 0.0)[0]))
    for g in jax.tree.leaves(nll_grad(params, ys)):
        np.testing.assert_allclose(g, 0.0, atol=2e-5)
    # away from it the gradient does not vanish
    grads = nll_grad(params, ys + 0.5)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) > 1e-2


def test_registry_builds_it_for_every_task():
    """Every task has a layout, so the kind is registered for all; building is host-side (the
    graph compiles to index arrays), and params come out member-stacked (checked without
    compiling: `jax.eval_shape`)."""
    assert registry.get_model_kind("structured").tasks == tuple(sorted(ALL_TASKS))
    for task in sorted(ALL_TASKS):
        model = registry.make_model("structured", TINY, get_spec(task))
        state = jax.eval_shape(model.init, jax.random.key(0), None)
        assert jax.tree.leaves(state.params)[0].shape[0] == TINY.members, task
        assert model.name == "structured"


@pytest.mark.parametrize("propagation", PROPAGATIONS)
def test_predict_shapes_and_keys(push, propagation):
    state, predicts = push
    predict = predicts[propagation]
    obs, action = jnp.zeros((7, 28)), jnp.full((7, 4), 0.5)
    a = predict(state, jax.random.key(2), obs, action)
    assert a.obs.shape == (7, 28) and a.reward.shape == (7,) and a.done.shape == (7,)
    b = predict(state, jax.random.key(2), obs, action)
    c = predict(state, jax.random.key(3), obs, action)
    np.testing.assert_array_equal(a.obs, b.obs)  # same key, same output
    assert (propagation == "expectation") == bool(jnp.all(a.obs == c.obs))  # noise iff sampling


def _push_data(n: int, key) -> Transition:
    """The TWO_OBJECTS layout: the arm moves by 0.1 action; an object within 0.5 of the arm is
    pushed away from it by 0.2 (0.5 - distance) along the line; velocities are the step."""
    k1, k2 = jax.random.split(key)
    obs = np.array(jax.random.uniform(k1, (n, 14), minval=-1, maxval=1))
    obs[:, 2:4] = obs[:, 6:8] = obs[:, 10:12] = 0.0
    action = np.array(jax.random.uniform(k2, (n, 2), minval=-1, maxval=1))
    nxt = obs.copy()
    nxt[:, 0:2] += 0.1 * action
    nxt[:, 2:4] = 0.1 * action
    for pos, vel in ((slice(4, 6), slice(6, 8)), (slice(8, 10), slice(10, 12))):
        d = obs[:, pos] - nxt[:, 0:2]
        dist = np.linalg.norm(d, axis=-1, keepdims=True)
        step = 0.2 * np.clip(0.5 - dist, 0, None) * d / np.maximum(dist, 1e-6)
        nxt[:, pos] += step
        nxt[:, vel] = step
    return Transition(obs, action, np.zeros(n), nxt, np.zeros(n, bool))


def test_fit_reduces_the_prediction_error():
    spec = _spec(TWO_OBJECTS)
    cfg = replace(TINY, hidden_size=16, max_epochs=20, propagation="expectation")
    model = make_structured(cfg, spec)
    data = _push_data(512, jax.random.key(0))
    state0 = model.init(jax.random.key(1), None)
    state, metrics = model.fit(state0, jax.random.key(2), data)

    predict = jax.jit(model.predict)

    def mse(s):
        pred = predict(s, jax.random.key(3), data.obs, data.action).obs
        return float(jnp.mean((pred - data.next_obs) ** 2))

    # the untrained model's error is dominated by its init noise; the fitted one learns the map
    assert mse(state) < 0.2 * mse(state0), (mse(state), mse(state0))
    assert np.isfinite(metrics["model/train_nll"])


def test_kinematic_prior_recovers_a_linear_arm_exactly():
    """Arm delta = 0.1 * action exactly (TWO_OBJECTS data): in normalised units the targets are
    a linear function of the normalised action, which the ridge fit (lambda 1e-3 N) recovers up
    to its shrinkage."""
    graph = compile_graph(TWO_OBJECTS, 2)
    data = _push_data(256, jax.random.key(0))
    x_raw = np.asarray(graph_inputs(graph, 0.0, jnp.asarray(data.obs), jnp.asarray(data.action)))
    y_raw = graph_targets(graph, data.obs, data.next_obs)
    keys_in, (keys_out, center) = _column_groups(graph)
    x = np.asarray(pooled_normalizer(x_raw, keys_in).normalize(x_raw))
    y = np.asarray(pooled_normalizer(y_raw, keys_out, center).normalize(y_raw))
    w = fit_prior(graph, x, y)
    resid = y[:, :4] - np.asarray(prior_outputs(graph, jnp.asarray(w), jnp.asarray(x)))[:, :4]
    np.testing.assert_allclose(resid, 0.0, atol=5e-3)


def test_a_task_without_a_layout_fails_in_one_line():
    spec = replace(get_spec("reacher"), name="bare", layout=None)
    with pytest.raises(ValueError, match="task 'bare' has no entity layout") as err:
        make_structured(TINY, spec)
    assert "fetch_push, fetch_push2, fetch_reach, pusher, reacher" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(
        ConfigError, match="exists for fetch_push, fetch_push2, fetch_reach, pusher, reacher"
    ):
        registry.check_model("structured", TINY, "maze")


def test_pooled_normalizer_shares_statistics_within_a_key():
    # columns 0 and 1 share a key: pooled values {0, 2, 4, 6}: mean 3, std sqrt(5);
    # column 2 uncentred: values {1, -1} -> mean 0, rms 1; column 3 (key None) untouched
    x = np.array([[0.0, 4.0, 1.0, 7.0], [2.0, 6.0, -1.0, 9.0]])
    norm = pooled_normalizer(x, ["a", "a", "b", None], [True, True, False, True])
    np.testing.assert_allclose(norm.mean, [3.0, 3.0, 0.0, 0.0])
    np.testing.assert_allclose(norm.std, [np.sqrt(5.0), np.sqrt(5.0), 1.0, 1.0], rtol=1e-6)
    assert not bool(norm.constant.any())


def test_object_velocity_off_hides_the_objects_own_velocity():
    """FetchPush's object reads velocity [14:20] and rotation [11:14] (kinds in INPUT_KINDS order);
    without `object_velocity` only its rotation, and the gripper's inputs are unchanged. The
    model's object position then does not depend on the object's velocity entries at all."""
    layout = get_spec("fetch_push").layout
    with_v = compile_graph(layout, 4, object_velocity=True)
    without = compile_graph(layout, 4, object_velocity=False)
    obj = {g.type: g for g in with_v.groups}[OBJECT]
    obj_off = {g.type: g for g in without.groups}[OBJECT]
    np.testing.assert_array_equal(obj.in_idx, [[14, 15, 16, 17, 18, 19, 11, 12, 13]])
    np.testing.assert_array_equal(obj_off.in_idx, [[11, 12, 13]])
    arm, arm_off = ({g.type: g for g in gr.groups}[ARM] for gr in (with_v, without))
    np.testing.assert_array_equal(arm.in_idx, arm_off.in_idx)
    np.testing.assert_array_equal(obj.out_idx, obj_off.out_idx)  # it still predicts them
    model = make_structured(
        replace(TINY, propagation="expectation", object_velocity=False), get_spec("fetch_push")
    )
    state = _randomise(model.init(jax.random.key(0), None), jax.random.key(1))
    obs = jax.random.normal(jax.random.key(2), (4, 28))
    action = jax.random.uniform(jax.random.key(3), (4, 4), minval=-1, maxval=1)
    kicked = obs.at[:, 14:20].add(jax.random.normal(jax.random.key(4), (4, 6)))
    predict = jax.jit(model.predict)
    a = predict(state, jax.random.key(5), obs, action).obs
    b = predict(state, jax.random.key(5), kicked, action).obs
    np.testing.assert_array_equal(a[:, 3:6] - obs[:, 3:6], b[:, 3:6] - kicked[:, 3:6])


def test_contact_pairs_of_the_layouts():
    # FetchPush: gripper position [0:3], object position [3:6]; Pusher: tips_arm, object
    np.testing.assert_array_equal(
        contact_pairs(get_spec("fetch_push").layout), [[[0, 1, 2], [3, 4, 5]]]
    )
    np.testing.assert_array_equal(
        contact_pairs(get_spec("pusher").layout), [[[14, 15, 16], [17, 18, 19]]]
    )
    assert contact_pairs(get_spec("fetch_reach").layout).shape == (0, 2, 0)  # no object


def test_contact_separation_by_hand():
    pairs = contact_pairs(get_spec("fetch_push").layout)
    N = 25
    obs, nxt = np.zeros((N + 3, 28)), np.zeros((N + 3, 28))
    # 25 pushes: the object slides 1 cm in x and ends d_i = 0.030, 0.031, ..., 0.054 m from the
    # gripper in x, 0.01 below it. numpy's 5th percentile of 25 sorted values sits at position
    # 0.05 * 24 = 1.2: 0.031 + 0.2 * 0.001 = 0.0312; the 99th percentile of 0.01s is 0.01
    d = 0.030 + 0.001 * np.arange(N)
    obs[:N, 3], nxt[:N, 3] = 1.0, 1.01
    nxt[:N, 0], nxt[:N, 2] = 1.01 - d, 0.01
    # not pushes: an object that did not move (gripper 5 mm from it), one that fell (moved 1 cm
    # down) and one that slid with the gripper 20 cm away (> 0.1)
    nxt[N, 0] = 0.005
    obs[N + 1, 3], nxt[N + 1, 3], nxt[N + 1, 5] = 1.0, 1.01, -0.01
    nxt[N + 1, 0] = 1.0
    obs[N + 2, 3], nxt[N + 2, 3], nxt[N + 2, 0] = 1.0, 1.01, 0.81
    np.testing.assert_allclose(contact_separation(obs, nxt, pairs), [0.0312, 0.01], atol=1e-6)
    # fewer than MIN_PUSHES (20) pushes: off
    np.testing.assert_array_equal(contact_separation(obs[:19], nxt[:19], pairs), [0.0, 0.0])


def test_project_contacts_carries_an_object_the_arm_sinks_into():
    pairs = contact_pairs(get_spec("fetch_push").layout)
    prev, nxt = np.zeros((4, 28), np.float32), np.zeros((4, 28), np.float32)
    prev[:, 0:3], prev[:, 3:6] = [0.0, 0.0, 0.4], [0.05, 0.0, 0.4]
    # row 0: the gripper moves (0.03, 0.01), the network moved the object only 1 cm: they end
    # (0.03, -0.01) apart, |.| = 0.0316 < 0.04, at one height, so the object is carried: it
    # keeps its offset (0.05, 0) from the gripper and ends at (0.08, 0.01), its z untouched
    nxt[:, 0:3], nxt[:, 3:6] = [0.03, 0.01, 0.4], [0.06, 0.0, 0.4]
    nxt[1, 3:6] = [0.09, 0.0, 0.4]  # row 1: 0.0608 apart, outside: unchanged
    nxt[2, 5] = 0.45  # row 2: 5 cm higher than the gripper, beyond the height 0.03: unchanged
    nxt[3, 3:6] = [0.06, 0.0, 0.41]  # row 3: 1 cm higher, within it: carried, z kept
    out = np.asarray(project_contacts(jnp.asarray(prev), jnp.asarray(nxt), pairs, 0.04, 0.03))
    expected = nxt.copy()
    expected[0, 3:5] = expected[3, 3:5] = [0.08, 0.01]
    np.testing.assert_allclose(out, expected, atol=1e-7)
    # separation 0 (no fit yet): exactly the network's prediction
    out = project_contacts(jnp.asarray(prev), jnp.asarray(nxt), pairs, 0.0, 0.03)
    np.testing.assert_array_equal(out, nxt)


def test_solid_extent_by_hand():
    pairs = contact_pairs(get_spec("fetch_push").layout)
    N = 100
    nxt = np.zeros((2 * N + 2, 28))
    nxt[:, 3:6] = [1.0, 0.5, 0.4]  # the object
    # N steps with the gripper 1 cm below the object's centre at x-distances 0.040 .. 0.0499: the
    # 1st percentile of those sorted values sits at position 0.01 * 99 = 0.99, 0.040 + 0.99e-4
    side = 0.040 + 1e-4 * np.arange(N)
    nxt[:N, 0], nxt[:N, 1], nxt[:N, 2] = 1.0 + side, 0.5, 0.39
    # N steps over its middle (y-distance 0.01 < radius / 2) at heights 0.036 .. 0.0459 above
    # its centre: the 1st percentile sits at position 0.99, 0.036 + 0.99e-4
    top = 0.036 + 1e-4 * np.arange(N)
    nxt[N : 2 * N, 0], nxt[N : 2 * N, 1], nxt[N : 2 * N, 2] = 1.0, 0.51, 0.4 + top
    # neither: 1 cm above its centre but 3 cm away (> radius / 2); lower but 20 cm away (> 0.1)
    nxt[2 * N, 0:3] = [1.03, 0.5, 0.41]
    nxt[2 * N + 1, 0:3] = [1.2, 0.5, 0.39]
    radius, height = 0.040 + 0.99e-4, 0.036 + 0.99e-4
    np.testing.assert_allclose(solid_extent(nxt, pairs), [radius, height], atol=1e-6)
    # fewer than MIN_PUSHES (20) steps over the object: its top is taken as the radius
    np.testing.assert_allclose(solid_extent(nxt[: N + 19], pairs), [radius, radius], atol=1e-6)
    # fewer than MIN_PUSHES steps from the side: off
    np.testing.assert_array_equal(solid_extent(nxt[N - 19 : 2 * N], pairs), [0.0, 0.0])


def test_project_contacts_solid_top_rests_an_arm_that_comes_down_on_the_object():
    pairs = contact_pairs(get_spec("fetch_push").layout)
    prev, nxt = np.zeros((3, 28), np.float32), np.zeros((3, 28), np.float32)
    prev[:, 3:6] = nxt[:, 3:6] = [0.05, 0.0, 0.4]
    # row 0: the gripper starts 5 cm above the object's centre and is predicted 1 cm above it,
    # 1 cm to its side (inside radius 0.04): it rests on the top, 0.4 + 0.035, object unmoved
    prev[0, 0:3], nxt[0, 0:3] = [0.05, 0.0, 0.45], [0.06, 0.0, 0.41]
    # row 1: from the side at the object's height (prev 0.05 apart): carried as without the top
    prev[1, 0:3], nxt[1, 0:3] = [0.0, 0.0, 0.4], [0.03, 0.0, 0.4]
    # row 2: from above but ending 0.045 away horizontally (outside the radius): unchanged
    prev[2, 0:3], nxt[2, 0:3] = [0.05, 0.0, 0.45], [0.095, 0.0, 0.41]
    out = np.asarray(
        project_contacts(
            jnp.asarray(prev), jnp.asarray(nxt), pairs, 0.04, 0.035, jnp.float32(0.035)
        )
    )
    expected = nxt.copy()
    expected[0, 2] = 0.435
    expected[1, 3:5] = [0.08, 0.0]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # top 0 (a traced zero: no fit yet, or solid_top off) is exactly the pushes-only projection
    out0 = project_contacts(jnp.asarray(prev), jnp.asarray(nxt), pairs, 0.04, 0.035, jnp.float32(0))
    ref = project_contacts(jnp.asarray(prev), jnp.asarray(nxt), pairs, 0.04, 0.035)
    np.testing.assert_array_equal(out0, ref)


TWO_OBJECTS_3D = _two_objects(3)  # the same scene in 3-d, on Fetch's table: 21 entries
ON_TABLE = replace(TINY, propagation="expectation", surface_features=True)


def test_surface_features_are_each_objects_last_inputs():
    """With a surface, each object node's inputs end with TABLE.features of its own position
    (hand values in tests/envs/test_layout.py); the arm's are unchanged."""
    plain = compile_graph(TWO_OBJECTS_3D, 3)
    graph = compile_graph(TWO_OBJECTS_3D, 3, surface=TABLE)
    arm, objs = graph.groups
    assert (arm.in_dim, objs.in_dim) == (3, 3 + 4) and arm.surface_pos is None
    assert graph.base_dim == plain.base_dim + 2 * 4
    obs = np.zeros((2, 21), np.float32)
    obs[:, 6:9] = [[1.3, 0.75, 0.425], [1.5, 0.45, 0.40]]  # obj1 in the middle / near a corner
    obs[:, 12:15] = [[1.6, 0.30, 0.10], [1.3, 0.75, 0.425]]  # obj2 off the table / middle
    obs[:, 9:12] = obs[:, 15:18] = 0.7  # velocities
    x = np.asarray(graph_inputs(graph, 0.0, obs, np.zeros((2, 3), np.float32)))
    middle, corner, off = (
        [0.0, 0.0, 0.25, 0.025],
        [0.05, -0.05, 0.05, 0.0],
        [0.15, -0.2, -0.1, -0.3],
    )
    nodes = x[:, 3 : 3 + 2 * 7].reshape(2, 2, 7)  # after the arm's 3 velocity features
    np.testing.assert_allclose(nodes[..., :3], 0.7)
    np.testing.assert_allclose(nodes[:, 0, 3:], [middle, corner], atol=1e-6)
    np.testing.assert_allclose(nodes[:, 1, 3:], [off, middle], atol=1e-6)
    x_plain = np.asarray(graph_inputs(plain, 0.0, obs, np.zeros((2, 3), np.float32)))
    np.testing.assert_array_equal(x[:, :3], x_plain[:, :3])  # the arm's features
    np.testing.assert_array_equal(x[:, 3 + 14 :], x_plain[:, 3 + 6 :])  # edges, action, cut-off


def test_with_surface_features_objects_stay_interchangeable_and_still_when_untouched():
    """Permuting the two objects permutes the predictions (the surface features are per object,
    pooled per type); with the edge network zeroed, both objects' mean delta is exactly zero
    whatever the table says (a passive object still moves only through messages)."""
    spec = replace(_spec(TWO_OBJECTS_3D, 3), surface=TABLE)
    model = make_structured(ON_TABLE, spec)
    graph = compile_graph(TWO_OBJECTS_3D, 3, lookahead=True, surface=TABLE)
    state = _random_pooled_state(model, graph)
    obs = jax.random.normal(jax.random.key(2), (5, 21)) * 0.2
    obs = obs.at[:, 6:9].add(jnp.array([1.3, 0.75, 0.42])).at[:, 12:15].add(1.3)
    action = jax.random.normal(jax.random.key(3), (5, 3))
    swap = np.r_[0:6, 12:18, 6:12, 18:21]  # obj1 <-> obj2
    predict = jax.jit(model.predict)
    out = predict(state, jax.random.key(5), obs, action).obs
    out_swapped = predict(state, jax.random.key(5), obs[:, swap], action).obs
    np.testing.assert_allclose(out_swapped, out[:, swap], atol=1e-6)
    assert float(jnp.max(jnp.abs(out[:, 6:12] - out[:, 12:18]))) > 1e-3  # the objects differ
    params = jax.tree.map(lambda p: p, state.params)
    params["params"]["edge"] = jax.tree.map(jnp.zeros_like, params["params"]["edge"])
    still = predict(state.replace(params=params), jax.random.key(5), obs, action).obs
    np.testing.assert_array_equal(still[:, 6:18], obs[:, 6:18])


def test_surface_features_carry_over_to_two_blocks_and_are_absent_without_a_table():
    """fetch_push -> fetch_push2 keeps the per-type encoder (inputs widened by 4 for both
    blocks); on a task without a described table top (Pusher) the flag changes nothing, so it
    can be on by default."""
    one, two = get_spec("fetch_push"), get_spec("fetch_push2")
    state = make_structured(ON_TABLE, one).init(jax.random.key(0), None)
    moved = transfer_state(state, ON_TABLE, one, two)
    ref = jax.eval_shape(make_structured(ON_TABLE, two).init, jax.random.key(0), None)
    assert jax.tree.structure(ref) == jax.tree.structure(moved)
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(moved), strict=True):
        assert a.shape == b.shape
    kernel = moved.params["params"]["encoder_object"]["kernel"]
    assert kernel.shape[1] == compile_graph(two.layout, 4, surface=TABLE).groups[1].in_dim == 13
    pusher = get_spec("pusher")
    on, off = (
        jax.eval_shape(make_structured(c, pusher).init, jax.random.key(0), None)
        for c in (ON_TABLE, replace(ON_TABLE, surface_features=False))
    )
    assert [a.shape for a in jax.tree.leaves(on)] == [b.shape for b in jax.tree.leaves(off)]


def test_defaults_are_the_levers_and_saved_configs_without_them_mean_the_old_ones():
    """The defaults are beta-NLL 0.5, 10-step rollout fine-tuning for 250 steps and the table top;
    a run or results sidecar saved before those fields existed means 0, 0 and no table
    (`declared_defaults`), not the new defaults."""
    cfg = StructuredConfig()
    assert (cfg.nll_beta, cfg.rollout_horizon, cfg.rollout_steps, cfg.surface_features) == (
        0.5,
        10,
        250,
        True,
    )
    absent = declared_defaults(cfg)
    assert (absent["nll_beta"], absent["rollout_horizon"], absent["surface_features"]) == (
        0.0,
        0,
        False,
    )
    assert absent["solid_top"] is True and absent["rollout_steps"] == 250  # the rest: defaults
