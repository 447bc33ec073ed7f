"""Carrying a structured model from FetchPush's one block to fetch_push2's two (`transfer_state`):
the new model's shapes, exact predictions when block 2 cannot interact, equivariance under
swapping the blocks, the re-laid-out normalisers against a direct computation, and errors."""

import functools
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import fetch_push2, get_spec, make
from prototypes.envs.layout import ARM, GOAL, OBJECT, Entity, EntityLayout
from prototypes.models.ensemble import EnsembleConfig
from prototypes.models.normalizer import Normalizer
from prototypes.models.structured import (
    StructuredConfig,
    StructuredState,
    _column_groups,
    compile_graph,
    graph_inputs,
    graph_targets,
    make_structured,
    pooled_normalizer,
    transfer_state,
)

FIRST_COLS = list(range(25)) + [40, 41, 42]  # fetch_push's flat obs inside fetch_push2's
# block 1 and block 2 entries, kind by kind (position, relative, rotation, velocity)
BLOCK1 = list(range(3, 9)) + list(range(11, 20))
BLOCK2 = list(range(25, 40))
# cut-off 1 m: an edge longer than 1 m carries exactly no message (weight clip(4 (1 - d), 0, 1));
# propagation "expectation": the ensemble mean, no sampling noise per output column
# (no table-top features: the block entries' indices below are the layout's own; their carry-over
# is tested in test_structured.py)
CFG = StructuredConfig(
    members=2,
    hidden_size=8,
    hidden_layers=1,
    cutoff=1.0,
    propagation="expectation",
    surface_features=False,
)


def _episodes(steps=40):
    """Real fetch_push2 transitions, the gripper driven at block 1 with noise (so it moves)."""
    env = make("fetch_push2")
    rng = np.random.default_rng(0)
    obs_l, act_l, next_l = [], [], []
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        for _ in range(steps // 2):
            push = np.clip((obs[3:6] - obs[0:3]) / 0.05, -1, 1)
            action = np.clip(np.r_[push, 0.0] + rng.normal(0, 0.5, 4), -1, 1).astype(np.float32)
            nxt, *_ = env.step(action)
            obs_l.append(obs)
            act_l.append(action)
            next_l.append(nxt)
            obs = nxt
    return np.array(obs_l, np.float32), np.array(act_l), np.array(next_l, np.float32)


def _random_state(model):
    """A model state with random weights (N(0, 0.3^2); the log-variance bounds at their initial
    0.5 and -10) and a fresh optimiser state (zero moments, as optax's init), built on the host
    from `jax.eval_shape` of the model's init: compiling the graph network's init, or drawing
    each leaf with jax.random op by op, takes most of a minute on a loaded machine."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), None)
    rng = np.random.default_rng(0)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "logvar" in name:
            return jnp.asarray(np.full(leaf.shape, 0.5 if "max" in name else -10.0, leaf.dtype))
        return jnp.asarray(0.3 * rng.standard_normal(leaf.shape).astype(leaf.dtype))

    def zeros(leaf):
        return jnp.asarray(np.zeros(leaf.shape, leaf.dtype))

    return StructuredState(
        params=jax.tree_util.tree_map_with_path(draw, shapes.params),
        opt_state=jax.tree.map(zeros, shapes.opt_state),
        in_norm=Normalizer.identity(shapes.in_norm.mean.shape[0]),
        out_norm=Normalizer.identity(shapes.out_norm.mean.shape[0]),
        prior=zeros(shapes.prior),
        contact=zeros(shapes.contact),
    )


@pytest.fixture(scope="module")
def models():
    """A fetch_push model state with per-type statistics from real data (as a fit leaves them:
    pooled per key), a random prior and a contact projection on, and its transfer."""
    one, two = get_spec("fetch_push"), get_spec("fetch_push2")
    obs2, act, next2 = _episodes()
    obs1, next1 = obs2[:, FIRST_COLS], next2[:, FIRST_COLS]
    model1, model2 = make_structured(CFG, one), make_structured(CFG, two)
    state = _random_state(model1)
    graph = compile_graph(one.layout, 4, lookahead=True)
    keys_in, (keys_out, center) = _column_groups(graph)
    x0 = np.asarray(jax.jit(functools.partial(graph_inputs, graph, CFG.cutoff))(obs1, act))
    edges = [c for c, k in enumerate(keys_in[: graph.base_dim]) if k and k[0] == "edge"]
    x = np.concatenate([x0, x0[:, edges] * 1.5], axis=-1)  # lookahead columns: any spread
    y = graph_targets(graph, obs1, next1)
    prior = 0.3 * np.random.default_rng(1).standard_normal(state.prior.shape)
    state = state.replace(
        in_norm=pooled_normalizer(x, keys_in),
        out_norm=pooled_normalizer(y, keys_out, center),
        prior=jnp.asarray(prior, jnp.float32),
        contact=jnp.asarray(np.array([0.04, 0.036, 0.036], np.float32)),
    )
    moved = transfer_state(state, CFG, one, two)
    return dict(
        one=one,
        two=two,
        state=state,
        moved=moved,
        x=x,
        keys_in=keys_in,
        graph=graph,
        obs2=obs2,
        act=act,
        predict1=jax.jit(model1.predict),
        predict2=jax.jit(model2.predict),
        model2=model2,
    )


def _parked(obs1: np.ndarray) -> np.ndarray:
    """fetch_push observations with block 2 added, at rest on the floor at PARKED (3 m away),
    its entries as the env computes them (relative position and velocity to the gripper's)."""
    out = np.zeros((len(obs1), 43), np.float32)
    out[:, FIRST_COLS] = obs1
    out[:, 25:28] = fetch_push2.PARKED
    out[:, 28:31] = fetch_push2.PARKED - obs1[:, 0:3]
    out[:, 34:37] = -obs1[:, 20:23]  # block at rest: velp relative = -grip_velp
    return out


def _swap(obs2: np.ndarray) -> np.ndarray:
    out = obs2.copy()
    out[:, BLOCK1], out[:, BLOCK2] = obs2[:, BLOCK2], obs2[:, BLOCK1]
    return out


def test_transferred_state_is_the_new_models_shape(models):
    ref = jax.eval_shape(models["model2"].init, jax.random.key(0), None)
    moved = models["moved"]
    assert jax.tree.structure(ref) == jax.tree.structure(moved)
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(moved), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    # outputs: arm 3 + 3 + 4 = 10, each block position 3 + rotation 3 + velocity 6 = 12
    assert moved.out_norm.mean.shape == (34,) and models["state"].out_norm.mean.shape == (22,)


def test_transfer_to_the_same_layout_is_the_identity(models):
    same = transfer_state(models["state"], CFG, models["one"], models["one"])
    for a, b in zip(jax.tree.leaves(models["state"]), jax.tree.leaves(same), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_weights_and_per_type_statistics_carry_over(models):
    state, moved = models["state"], models["moved"]
    p, q = state.params["params"], moved.params["params"]
    for name in ("edge", "encoder_arm", "encoder_object", "decoder_arm", "decoder_object"):
        for a, b in zip(jax.tree.leaves(p[name]), jax.tree.leaves(q[name]), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(moved.prior), np.asarray(state.prior))
    np.testing.assert_array_equal(np.asarray(moved.contact), np.asarray(state.contact))
    # output columns: [arm 10 | block 1 12 | block 2 12]; block 2 takes block 1's columns
    src = np.r_[np.arange(22), np.arange(10, 22)]
    for field in ("mean", "std", "constant"):
        old, new = getattr(state.out_norm, field), getattr(moved.out_norm, field)
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old)[src])
    np.testing.assert_array_equal(np.asarray(q["max_logvar"]), np.asarray(p["max_logvar"])[:, src])


def test_object_to_object_edges_take_the_statistics_pooled_over_all_old_edges(models):
    """The new (object, object) edge columns against a direct computation: each edge feature
    pooled over every edge column of the old graph on the same data."""
    x, keys, graph = models["x"], models["keys_in"], models["graph"]
    new = compile_graph(models["two"].layout, 4, lookahead=True)
    new_keys = _column_groups(new)[0]
    types = [g.type for g in new.groups for _ in range(g.n)]
    obj_obj = {
        int(t)
        for t, s, r in zip(new.edge_group, new.senders, new.receivers, strict=True)
        if types[s] == types[r] == OBJECT
    }
    assert len(obj_obj) == 1  # one new type pair (block 1 <-> block 2, both directions)
    checked = 0
    for kind in ("edge", "look"):
        for f in range(graph.edge_dim):
            old_cols = [c for c, k in enumerate(keys) if k and k[0] == kind and k[2] == f]
            vals = x[:, old_cols].astype(np.float64)
            mean, std = vals.mean(), vals.std()
            for c, k in enumerate(new_keys):
                if k and k[0] == kind and k[1] in obj_obj and k[2] == f:
                    got = models["moved"].in_norm
                    np.testing.assert_allclose(float(got.mean[c]), mean, rtol=1e-5, atol=1e-6)
                    np.testing.assert_allclose(float(got.std[c]), std, rtol=1e-5)
                    checked += 1
    # 4 features (x, y, z, distance), 2 directed edges, edge and lookahead blocks
    assert checked == 4 * 2 * 2


@pytest.mark.slow  # compiles both models' predict (~5 s each on a quiet machine, 3x loaded)
def test_far_silent_block2_leaves_the_prediction_unchanged(models):
    """Block 2 parked 3 m away with a 1 m cut-off: its edges carry exactly zero messages, so the
    gripper, block 1 and the goal are predicted as by the one-block model on the one-block
    observation, the reward is the same, and block 2 (a passive object nobody touches) keeps its
    position, rotation and world velocity exactly."""
    obs1, act = models["obs2"][:, FIRST_COLS], models["act"]
    obs2 = _parked(obs1)
    key = jax.random.key(3)
    a = models["predict1"](models["state"], key, obs1, act)
    b = models["predict2"](models["moved"], key, obs2, act)
    np.testing.assert_allclose(np.asarray(b.obs)[:, FIRST_COLS], np.asarray(a.obs), atol=1e-5)
    np.testing.assert_allclose(np.asarray(b.reward), np.asarray(a.reward), atol=1e-5)
    nxt = np.asarray(b.obs)
    np.testing.assert_array_equal(nxt[:, 25:28], obs2[:, 25:28])
    np.testing.assert_array_equal(nxt[:, 31:34], obs2[:, 31:34])
    np.testing.assert_array_equal(nxt[:, 37:40], 0.0)
    # relative entries follow the gripper: position recomputed, velocity back in its frame
    np.testing.assert_allclose(nxt[:, 28:31], nxt[:, 25:28] - nxt[:, 0:3], atol=1e-6)
    np.testing.assert_allclose(nxt[:, 34:37], -nxt[:, 20:23], atol=1e-6)
    # and the data moved the gripper: the comparison is not between two copies of the input
    assert np.abs(nxt[:, 0:3] - obs2[:, 0:3]).max() > 1e-3


@pytest.mark.slow
def test_without_the_cutoff_a_far_block_still_changes_the_prediction(models):
    """What is true without a cut-off (the default): parking block 2 3 m away does not silence
    it; its messages still reach the gripper and block 1 (the learned gate is not zero), so the
    equality above needs the cut-off."""
    cfg = replace(CFG, cutoff=0.0)
    one, two = models["one"], models["two"]
    state = models["state"]
    moved = transfer_state(state, cfg, one, two)
    obs1, act = models["obs2"][:, FIRST_COLS], models["act"]
    a = jax.jit(make_structured(cfg, one).predict)(state, jax.random.key(3), obs1, act)
    b = jax.jit(make_structured(cfg, two).predict)(moved, jax.random.key(3), _parked(obs1), act)
    diff = np.abs(np.asarray(b.obs)[:, FIRST_COLS] - np.asarray(a.obs)).max()
    assert diff > 1e-4


def test_swapping_the_blocks_swaps_the_predictions(models):
    """Same-type entities share weights and statistics: exchanging block 1's and block 2's
    entries exchanges their predicted next entries and leaves the gripper's and goal's, on real
    two-block observations (blocks within the cut-off: they interact). Two caveats keep this to
    the ensemble mean and to states the env produces: sampled propagation draws noise per output
    column, and the contact projection visits the arm-block pairs in order, so it is symmetric
    only while at most one block is within its reach (always, for two 5 cm blocks 8 cm apart)."""
    obs2, act = models["obs2"], models["act"]
    predict, state, key = models["predict2"], models["moved"], jax.random.key(4)
    a = np.asarray(predict(state, key, obs2, act).obs)
    b = np.asarray(predict(state, key, _swap(obs2), act).obs)
    np.testing.assert_allclose(b, _swap(a), atol=1e-6, rtol=0)
    assert np.abs(a[:, BLOCK1] - a[:, BLOCK2]).max() > 0.05  # the blocks differ
    dist = np.linalg.norm(obs2[:, 3:6] - obs2[:, 25:28], axis=-1)
    assert dist.max() < 0.75  # every block-block edge has full cut-off weight 1


def test_errors_name_the_type_or_the_model(models):
    state, one, two = models["state"], models["one"], models["two"]
    with pytest.raises(ValueError, match="entity type 'object' is not in 'fetch_reach'"):
        transfer_state(state, CFG, get_spec("fetch_reach"), one)
    # a gripper with only position and velocity: the arm's features differ
    small = EntityLayout(
        entities=(
            Entity("gripper", ARM, position=slice(0, 3), velocity=slice(3, 6)),
            Entity("object", OBJECT, position=slice(6, 9)),
            Entity("goal", GOAL, position=slice(9, 12)),
        ),
        obs_dim=12,
    )
    toy = replace(two, name="toy", obs_dim=12, layout=small)
    with pytest.raises(ValueError, match="entity type 'arm' has feature kinds and sizes"):
        transfer_state(state, CFG, one, toy)
    with pytest.raises(ValueError, match="action sizes differ"):
        transfer_state(state, CFG, one, get_spec("pusher"))
    with pytest.raises(ValueError, match="EnsembleConfig model cannot be carried over"):
        transfer_state(state, EnsembleConfig(), one, two)
