"""Entity layouts: every obs index in exactly one slice, named slices hold what they say on real
env observations, and bad layouts are refused with the offending index named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import ALL_TASKS, fetch, get_spec, make
from prototypes.envs.layout import (
    ARM,
    GOAL,
    OBJECT,
    Entity,
    EntityLayout,
    Surface,
    indices,
    take,
)


@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_layout_covers_every_obs_index_exactly_once(name):
    spec = get_spec(name)
    layout = spec.layout
    assert layout is not None and layout.obs_dim == spec.obs_dim
    # count independently of validate(): every index is hit once across all entities and kinds
    count = np.zeros(spec.obs_dim, np.int64)
    for entity in layout.entities:
        for index in entity.kinds.values():
            np.add.at(count, list(indices(index)), 1)
    np.testing.assert_array_equal(count, np.ones(spec.obs_dim, np.int64))
    # every task has one arm and one goal; the owner lookup agrees with the slices
    assert len(layout.entities_of_type(ARM)) == 1 and len(layout.entities_of_type(GOAL)) == 1
    for entity in layout.entities:
        for kind in entity.kinds:
            assert all(
                layout.owner(i) == (entity.name, kind) for i in layout.index_of(entity.name, kind)
            )
    hash(spec)  # the spec (and its layout of slices) stays hashable


def test_reacher_slices_hold_the_named_quantities():
    env = make("reacher", seed=0)
    env.reset(seed=3)
    obs, *_ = env.step(np.array([0.7, -0.4], np.float32))  # so the velocities are non-zero
    data, layout = env.unwrapped.data, get_spec("reacher").layout
    arm, target = layout["arm"], layout["target"]
    np.testing.assert_array_equal(obs[target.position], data.qpos[2:4])
    q = data.qpos[:2]
    np.testing.assert_array_equal(obs[arm.rotation], np.r_[np.cos(q), np.sin(q)])
    np.testing.assert_array_equal(obs[arm.velocity], data.qvel[:2])
    assert np.abs(obs[arm.velocity]).min() > 0
    assert arm.relative_to == "target"
    tip_minus_target = data.body("fingertip").xpos - data.body("target").xpos
    np.testing.assert_array_equal(obs[arm.relative], tip_minus_target[:2])


def test_pusher_slices_hold_the_body_positions():
    env = make("pusher", seed=0)
    obs, _ = env.reset(seed=3)
    data, layout = env.unwrapped.data, get_spec("pusher").layout
    np.testing.assert_array_equal(obs[layout["object"].position], data.body("object").xpos)
    np.testing.assert_array_equal(obs[layout["goal"].position], data.body("goal").xpos)
    np.testing.assert_array_equal(obs[layout["arm"].position], data.body("tips_arm").xpos)
    np.testing.assert_array_equal(obs[layout["arm"].rotation], data.qpos[:7])
    np.testing.assert_array_equal(obs[layout["arm"].velocity], data.qvel[:7])


@pytest.mark.parametrize("name", sorted(fetch.LAYOUTS))
def test_fetch_slices_hold_the_gripper_object_and_goal(name):
    env = make(name).env  # the dict env under FlattenGoalObs
    d, _ = env.reset(seed=3)
    d, *_ = env.step(np.array([0.5, -0.5, 0.3, 1.0], np.float32))
    flat, layout, u = fetch.flatten(d), get_spec(name).layout, env.unwrapped
    grip = u._utils.get_site_xpos(u.model, u.data, "robot0:grip")
    np.testing.assert_array_equal(take(flat, layout["gripper"].position), grip)
    np.testing.assert_array_equal(take(flat, layout["goal"].position), d["desired_goal"])
    # the achieved goal is the object's position with an object, the gripper's without
    achieved = layout["object"].position if "object" in layout else layout["gripper"].position
    np.testing.assert_array_equal(take(flat, achieved), d["achieved_goal"])
    assert fetch.LAYOUTS[name].achieved == achieved and fetch.LAYOUTS[name].entities is layout
    if "object" in layout:
        obj = layout["object"]
        assert obj.relative_to == "gripper"
        # object_rel_pos = object_pos - grip_pos, computed by the env in float64: exact
        np.testing.assert_array_equal(take(flat, obj.relative), d["achieved_goal"] - grip)


def test_take_gathers_a_tuple_and_slices_a_slice_under_jit():
    x = jnp.arange(12.0).reshape(2, 6)
    # a tuple (3, 0) picks columns 3 and 0 (not x[3, 0]); a slice is a plain slice
    np.testing.assert_array_equal(jax.jit(lambda x: take(x, (3, 0)))(x), [[3.0, 0.0], [9.0, 6.0]])
    np.testing.assert_array_equal(take(x, slice(1, 3)), x[:, 1:3])
    layout = get_spec("fetch_push").layout
    assert layout.index_of("gripper", "other") == (9, 10, 23, 24)
    assert layout.index_of("object", "velocity") == (14, 15, 16, 17, 18, 19)
    assert layout.owner(24) == ("gripper", "other") and layout.types == (ARM, OBJECT, GOAL)
    with pytest.raises(KeyError, match="has no rotation"):
        layout.index_of("goal", "rotation")


def _layout(*entities, obs_dim=6):
    return EntityLayout(entities=tuple(entities), obs_dim=obs_dim)


def test_bad_layouts_raise_naming_the_index():
    arm = Entity("arm", ARM, position=slice(0, 3))
    with pytest.raises(ValueError, match="obs index 2 is in both arm.position and goal.position"):
        _layout(arm, Entity("goal", GOAL, position=slice(2, 5)))
    with pytest.raises(ValueError, match="obs index 4 is in no entity slice"):
        _layout(arm, Entity("goal", GOAL, position=(3, 5)))
    with pytest.raises(ValueError, match="layout index 6 is out of range"):
        _layout(arm, Entity("goal", GOAL, position=slice(3, 7)))
    with pytest.raises(ValueError, match="entity names must be unique"):
        _layout(arm, Entity("arm", GOAL, position=slice(3, 6)))
    with pytest.raises(ValueError, match="relative to unknown 'box'"):
        _layout(arm, Entity("goal", GOAL, relative=slice(3, 6), relative_to="box"))
    with pytest.raises(ValueError, match="share type 'object'"):
        _layout(
            arm,
            Entity("a", OBJECT, position=slice(3, 5)),
            Entity("b", OBJECT, position=(5,)),
        )
    with pytest.raises(ValueError, match="needs 0 <= start < stop"):
        _layout(arm, Entity("goal", GOAL, position=slice(3, None)))
    # the good one builds and validates
    _layout(arm, Entity("goal", GOAL, position=slice(3, 6))).validate()


def test_fetch_table_is_the_scene_table():
    """fetch.TABLE, the surface every Fetch spec carries, is the table0 box of the loaded scene:
    its top at body z + half-height, its outline body xy -/+ half-sizes."""
    for name in sorted(fetch.LAYOUTS):
        assert get_spec(name).surface == fetch.TABLE
    m = make("fetch_push").unwrapped.model
    body = m.body("table0")
    size = m.geom_size[m.body_geomadr[body.id]]
    np.testing.assert_allclose(fetch.TABLE.low, body.pos[:2] - size[:2], atol=1e-12)
    np.testing.assert_allclose(fetch.TABLE.high, body.pos[:2] + size[:2], atol=1e-12)
    np.testing.assert_allclose(fetch.TABLE.top, body.pos[2] + size[2], atol=1e-12)
    assert get_spec("pusher").surface is None and get_spec("reacher").surface is None


def test_surface_features_by_hand():
    """Table x 1.05-1.55, y 0.40-1.10, top 0.40, near 0.1. Middle: no edge vector, 0.25 m
    inside, 2.5 cm up. Near the +x and -y edges (5 cm inside each): the vector (0.05, -0.05).
    Off the +x edge by 5 cm and off -y by 10 cm, 30 cm below the top: d = (0.55, -0.05, -0.1,
    0.8), so the vector is (0.15, -0.2) and the inside distance -0.1."""
    pos = np.array([[1.3, 0.75, 0.425], [1.5, 0.45, 0.40], [1.6, 0.30, 0.10]])
    want = np.array([[0.0, 0.0, 0.25, 0.025], [0.05, -0.05, 0.05, 0.0], [0.15, -0.2, -0.1, -0.3]])
    np.testing.assert_allclose(fetch.TABLE.features(pos), want, atol=1e-12)
    jitted = jax.jit(fetch.TABLE.features)(jnp.asarray(pos[None], jnp.float32))  # [1, 3, 4]
    np.testing.assert_allclose(np.asarray(jitted)[0], want, atol=1e-6)
    with pytest.raises(ValueError, match=r"low < high in x and y, got \(1.0, 0.0\), \(0.5, 1.0\)"):
        Surface(low=(1.0, 0.0), high=(0.5, 1.0), top=0.0)
    with pytest.raises(ValueError, match="near must be > 0, got 0.0"):
        Surface(low=(0.0, 0.0), high=(1.0, 1.0), top=0.0, near=0.0)
