"""FetchPush with two blocks: block 2's observation entries against the simulator's own state,
the one-block task recovered exactly with block 2 parked, the reset rule, the layout and the
rewards reading block 1."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from prototypes.envs import costs, fetch, fetch_push2, get_spec, make
from prototypes.envs.layout import ARM, GOAL, OBJECT

FIRST_COLS = list(range(25)) + [40, 41, 42]  # fetch_push's flat obs inside fetch_push2's
SECOND = {"pos": slice(25, 28), "rel": slice(28, 31), "rot": slice(31, 34)}


def _push_towards_block2(env, seed, steps):
    """Drive the gripper at block 2 (down to block height first), so it moves and rotates;
    yields the flat observation after each step (the simulator's state is that step's)."""
    obs, _ = env.reset(seed=seed)
    for t in range(steps):
        target = obs[25:28] if t >= 4 else np.r_[obs[25:27], obs[2]]
        action = np.r_[np.clip((target - obs[0:3]) / 0.05, -1, 1), 0.0].astype(np.float32)
        obs, *_ = env.step(action)
        yield obs


def test_block2_entries_equal_the_simulators_state():
    env = make("fetch_push2")
    u = env.unwrapped
    m, d = u.model, u.data
    dt = u.n_substeps * m.opt.timestep  # 20 x 0.002 s = 0.04 s per env step
    adr = m.jnt_dofadr[m.joint("object1:joint").id]
    grip_site = m.site("robot0:grip").id
    moved = 0.0
    for obs in _push_towards_block2(env, seed=4, steps=16):
        body = d.body("object1")
        np.testing.assert_allclose(obs[SECOND["pos"]], body.xpos, atol=1e-9, rtol=0)
        np.testing.assert_allclose(
            obs[SECOND["rel"]], body.xpos - d.site_xpos[grip_site], atol=1e-9, rtol=0
        )
        # gymnasium's mat2euler is scipy's intrinsic XYZ; MuJoCo quaternions are scalar-first
        w, x, y, z = body.xquat
        euler = Rotation.from_quat([x, y, z, w]).as_euler("XYZ")
        np.testing.assert_allclose(obs[SECOND["rot"]], euler, atol=1e-9, rtol=0)
        # a free joint's qvel: world linear velocity of the body origin, then the angular one
        # in the body frame; the gripper's site velocity from mj_objectVelocity (world frame)
        grip_vel = np.zeros(6)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_SITE, grip_site, grip_vel, 0)
        velp = d.qvel[adr : adr + 3] * dt - grip_vel[3:] * dt
        velr = body.xmat.reshape(3, 3) @ d.qvel[adr + 3 : adr + 6] * dt
        np.testing.assert_allclose(obs[34:37], velp, atol=1e-9, rtol=0)
        np.testing.assert_allclose(obs[37:40], velr, atol=1e-9, rtol=0)
        moved = max(moved, float(np.abs(d.qvel[adr : adr + 6]).max()))
    assert moved > 0.05  # block 2 was pushed: the velocity checks were not all zeros


def test_parked_block2_leaves_fetch_push_unchanged():
    """Block 2 on the floor 3 m away: the first 25 entries and the goal are fetch_push's for the
    same seed and actions (MuJoCo solves both blocks' contacts together, so equal to 1e-6, not
    bit for bit; measured ~1e-11), and so are the reward and success."""
    two, one = make("fetch_push2", parked=True), make("fetch_push")
    a, _ = two.reset(seed=5)
    b, _ = one.reset(seed=5)
    np.testing.assert_allclose(a[FIRST_COLS], b, atol=1e-6, rtol=0)
    np.testing.assert_allclose(a[25:28], fetch_push2.PARKED, atol=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(10):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        a, ra, _, _, ia = two.step(action)
        b, rb, _, _, ib = one.step(action)
        np.testing.assert_allclose(a[FIRST_COLS], b, atol=1e-6, rtol=0)
        assert ra == rb and ia["is_success"] == ib["is_success"]
    assert np.linalg.norm(a[0:3] - b[0:3]) < 1e-6 and np.abs(a[20:23]).max() > 0  # arm moved


def test_block2_is_a_copy_of_block1():
    m = make("fetch_push2").unwrapped.model
    g1, g2 = m.geom("object0"), m.geom("object1")
    for field in ("size", "friction", "matid", "condim", "type", "solref", "solimp"):
        np.testing.assert_array_equal(getattr(g1, field), getattr(g2, field), err_msg=field)
    b1, b2 = m.body("object0"), m.body("object1")
    np.testing.assert_array_equal(b1.mass, b2.mass)  # 2 kg
    np.testing.assert_array_equal(b1.inertia, b2.inertia)
    d1, d2 = (m.jnt_dofadr[m.joint(f"{n}:joint").id] for n in ("object0", "object1"))
    np.testing.assert_array_equal(m.dof_damping[d1 : d1 + 6], m.dof_damping[d2 : d2 + 6])
    # FetchPush's 15 positions + 7 of a free joint = 22; two free joints: 29
    assert (m.nq, m.nv) == (29, 27)


def test_reset_places_block2_by_the_rule_and_keeps_fetch_push_episodes():
    two, one = make("fetch_push2"), make("fetch_push")
    u = two.unwrapped
    grip = u.initial_gripper_xpos[:2]
    firsts = []
    for seed in range(20):
        obs, _ = two.reset(seed=seed)
        ref, _ = one.reset(seed=seed)
        # block 1 and the goal are fetch_push's own (block 2 draws from a stream of its own)
        np.testing.assert_allclose(obs[FIRST_COLS], ref, atol=1e-9, rtol=0)
        b1, b2, goal = obs[3:6], obs[25:28], obs[40:43]
        for other in (b1[:2], goal[:2], grip):
            assert np.linalg.norm(b2[:2] - other) >= fetch_push2.MIN_GAP
        assert np.all(np.abs(b2[:2] - grip) <= u.obj_range)
        assert b2[2] == pytest.approx(b1[2], abs=1e-9)  # on the table, at block 1's height
        # upright and at rest: no rotation, velocity relative to the gripper's minus the gripper's
        np.testing.assert_array_equal(obs[31:34], 0.0)
        np.testing.assert_array_equal(obs[37:40], 0.0)
        np.testing.assert_array_equal(obs[34:37], -obs[20:23])
        firsts.append(b2[:2])
    assert len({tuple(np.round(p, 6)) for p in firsts}) == 20  # a fresh place each seed
    # the same seed gives the same episode, on a fresh env and after other resets
    again, _ = make("fetch_push2").reset(seed=7)
    np.testing.assert_array_equal(again, two.reset(seed=7)[0])


def test_layout_validates_and_has_two_objects():
    layout = get_spec("fetch_push2").layout
    layout.validate()
    assert layout.obs_dim == 43 and get_spec("fetch_push2").obs_dim == 43
    assert [(e.name, e.type) for e in layout.entities] == [
        ("gripper", ARM),
        ("object", OBJECT),
        ("object1", OBJECT),
        ("goal", GOAL),
    ]
    second = layout["object1"]
    assert second.relative_to == "gripper"
    assert layout.index_of("object1", "velocity") == tuple(range(34, 40))
    # the achieved goal is block 1
    assert fetch.LAYOUTS["fetch_push2"].achieved == slice(3, 6)
    # the one-object push cost refuses two objects; the task's rewards read block 1 instead
    with pytest.raises(ValueError, match="exactly one object entity"):
        costs.push_entities(layout)


@pytest.mark.parametrize("kind", ["sparse", "dense", "shaped"])
def test_rewards_read_block1_only(kind):
    rng = np.random.default_rng(1)
    nxt = rng.uniform(0.3, 1.5, (6, 43)).astype(np.float32)
    nxt[:3, 3:6] = nxt[:3, 40:43] + 0.01  # three near the goal (sparse reward 0)
    obs, act = jnp.zeros((6, 43)), jnp.zeros((6, 4))
    two = jax.jit(jax.vmap(fetch.reward_fns("fetch_push2")[kind]))
    one = jax.jit(jax.vmap(fetch.reward_fns("fetch_push")[kind]))
    r = np.asarray(two(obs, act, jnp.asarray(nxt)))
    np.testing.assert_array_equal(r, np.asarray(one(obs[:, FIRST_COLS], act, nxt[:, FIRST_COLS])))
    moved = nxt.copy()
    moved[:, 25:40] += 0.3  # block 2 elsewhere: the same reward
    np.testing.assert_array_equal(np.asarray(two(obs, act, jnp.asarray(moved))), r)
    moved[:, 3:6] += 0.3  # block 1 elsewhere: a different one
    assert np.all(np.asarray(two(obs, act, jnp.asarray(moved))) != r) or kind == "sparse"
    if kind == "sparse":
        np.testing.assert_array_equal(r, [0, 0, 0, -1, -1, -1])
