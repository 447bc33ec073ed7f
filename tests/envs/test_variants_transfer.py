"""Variants for the transfer suite: A's training and held-out halves, own ranges, distractors."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from prototypes.envs import get_spec, make
from prototypes.envs.variants import (
    FACTORS,
    MAX_DISTRACTORS,
    Span,
    Variant,
    parse_variant,
    region_cell_parity,
)


@pytest.mark.parametrize("box, parity", [("Atrain", 0), ("Aheld", 1)])
def test_scale_halves_draw_from_even_and_odd_bins(box, parity):
    # mass A = [0.5, 2] in 8 bins of 1.5 / 8 = 0.1875: Atrain in bins 0, 2, 4, 6; Aheld 1, 3, 5, 7
    env = make("pusher", variant=f"mass={box}")
    bins = []
    for seed in range(40):
        m = env.reset(seed=seed)[1]["variant"]["mass"]
        assert 0.5 <= m <= 2.0
        bins.append(int((m - 0.5) // 0.1875))
    assert {b % 2 for b in bins} == {parity}
    assert len(set(bins)) == 4  # all four bins of its half are used


def test_region_checkerboard_by_hand():
    box = ((-0.2, -0.3), (0.2, 0.0))  # pusher start A: 4 bins of 0.1 (x) and 0.075 (y)
    assert region_cell_parity(np.array([-0.19, -0.29]), box) == 0  # cell (0, 0)
    assert region_cell_parity(np.array([-0.05, -0.29]), box) == 1  # cell (1, 0)
    assert region_cell_parity(np.array([0.0, 0.0]), box) == 1  # cell (2, 3): the top edge clips
    assert region_cell_parity(np.array([0.15, -0.1]), box) == 1  # cell (3, 2)
    assert region_cell_parity(np.array([0.15, -0.2]), box) == 0  # cell (3, 1)


@pytest.mark.parametrize("box, parity", [("Atrain", 0), ("Aheld", 1)])
def test_region_halves_draw_from_their_cells(box, parity):
    env = make("pusher", variant=f"start={box}")
    f = FACTORS["pusher"]["start"]
    for seed in range(20):
        p = np.asarray(env.reset(seed=seed)[1]["variant"]["start"])
        assert region_cell_parity(p, f.a) == parity
        assert np.all(np.asarray(f.a[0]) <= p) and np.all(p <= np.asarray(f.a[1]))


def test_own_range_round_trips_and_draws_inside():
    v = parse_variant("pusher", "mass=0.25~0.4")
    assert v == Variant("pusher", (("mass", Span(0.25, 0.4)),))
    assert str(v) == "mass=0.25~0.4" and parse_variant("pusher", str(v)) == v
    env = make("pusher", variant=v)
    masses = [env.reset(seed=s)[1]["variant"]["mass"] for s in range(10)]
    assert all(0.25 <= m <= 0.4 for m in masses) and len(set(masses)) == 10


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("mass=1~1", "variant mass=1.0~1.0 is an empty range"),
        ("mass=3~2", "variant mass=3.0~2.0 is an inverted range"),
        ("mass=-1~2", "variant mass=-1.0 is outside its physical range"),
        ("size=0~2", "variant size=0.0 is outside its physical range (size multiplier > 0)"),
        ("goal=0~1", "only a multiplier"),
        ("distractors=4", "not a count of distractors (an integer 0..3"),
        ("distractors=1.5", "not a count of distractors"),
        ("distractors=Aheld", "distractors has no held-out values"),
    ],
)
def test_bad_ranges_and_counts_are_one_line(text, fragment):
    with pytest.raises(ValueError) as e:
        parse_variant("pusher", text)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def _dist(p, a, b):
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0, 1)
    return np.linalg.norm(p - (a + t * (b - a)))


@pytest.mark.parametrize("task", ["pusher", "fetch_push"])
def test_distractors_are_placed_apart_and_unobserved(task):
    plain = make(task)
    env = make(task, variant="distractors=2")
    u = env.unwrapped
    f = FACTORS[task]["distractors"]
    assert u.model.nbody == plain.unwrapped.model.nbody + MAX_DISTRACTORS
    assert (u.model.nq, u.model.nv) == (plain.unwrapped.model.nq, plain.unwrapped.model.nv)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        obs0, _ = plain.reset(seed=seed)
        np.testing.assert_array_equal(obs, obs0)  # the same episode, no trace in the observation
        points = np.asarray(info["variant"]["distractors"])
        assert points.shape == (2, 2)
        if task == "pusher":
            obj, goal, arm = (u.data.body(b).xpos[:2] for b in ("object", "goal", "tips_arm"))
        else:
            obj, goal = u.data.body("object0").xpos[:2], u.goal[:2]
            arm = u.initial_gripper_xpos[:2]
        for i, p in enumerate(points):
            for q in (obj, goal, arm, *points[:i]):
                assert np.linalg.norm(p - q) >= f.gap
            assert _dist(p, obj, goal) >= f.gap
            body = u.model.body(f"distractor{i}").id
            np.testing.assert_allclose(u.data.xpos[body], [*p, f.height])
        parked = u.data.xpos[u.model.body("distractor2").id]
        assert parked[2] == -1.0 and parked[0] >= 10  # the unused one is far away
    again = make(task, variant="distractors=B")
    first = [again.reset(seed=s)[1]["variant"]["distractors"] for s in (3, 4)]
    assert first == [again.reset(seed=s)[1]["variant"]["distractors"] for s in (3, 4)]
    counts = {len(again.reset(seed=s)[1]["variant"]["distractors"]) for s in range(20)}
    assert counts == {1, 2, 3}  # B: 1 to 3


@pytest.mark.parametrize("task", ["pusher", "fetch_push"])
def test_parked_distractors_change_no_step(task):
    """With every distractor parked (count 0, range A), the rebuilt model steps exactly as the
    task's own: the same observations under the same random actions for 30 steps. (FetchPush's
    rebuilt model once lost the mocap weld's zeroed relative pose: its gripper ended 0.5 m off.)"""
    plain, env = make(task), make(task, variant="distractors=A")
    dim = plain.action_space.shape[0]
    actions = np.random.default_rng(0).uniform(-1, 1, (30, dim)).astype(np.float32)
    for seed in (0, 5):
        obs, _ = env.reset(seed=seed)
        obs0, _ = plain.reset(seed=seed)
        np.testing.assert_array_equal(obs, obs0)
        for a in actions:
            obs, *_ = env.step(a)
            obs0, *_ = plain.step(a)
            np.testing.assert_allclose(obs, obs0, atol=1e-9, rtol=0)


def test_a_distractor_touching_the_object_pushes_it_and_the_oracle_knows():
    """Pusher, zero action, everything at rest: the object moves only if something touches it.
    A distractor overlapping it by 1 cm pushes it out; the oracle (which compiles its model from
    the env's file and copies its parameters) predicts that step to 1e-5."""
    from prototypes.models.oracle import make_oracle

    spec = get_spec("pusher")
    env = make("pusher", variant="distractors=1")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    qpos = u.data.qpos.copy()
    u.set_state(qpos, np.zeros_like(u.data.qvel))
    obj = u.data.body("object").xpos.copy()
    body = u.model.body("distractor0").id
    # object radius 0.05 + box half-width 0.04 = 0.09 apart when touching: 0.08 overlaps 1 cm
    u.model.body_pos[body] = [obj[0] + 0.08, obj[1], -0.275]
    mujoco.mj_forward(u.model, u.data)
    obs = u._get_obs()
    oracle = make_oracle(spec, env, threads=1)
    root = jax.tree.map(lambda x: x[None], oracle.encode((), obs))
    pred = oracle.predict((), jax.random.key(0), root, jnp.zeros((1, 7))).obs.obs[0]
    nxt, *_ = env.step(np.zeros(7, np.float32))
    assert nxt[17] < obs[17] - 1e-4  # pushed away from the box, along -x
    np.testing.assert_allclose(np.asarray(pred), nxt, atol=1e-5)
    # the same state without the box: the object stays exactly where it was
    plain = make("pusher")
    plain.reset(seed=0)
    plain.unwrapped.set_state(qpos, np.zeros(11))
    alone, *_ = plain.step(np.zeros(7, np.float32))
    np.testing.assert_allclose(alone[17:20], obs[17:20], atol=1e-12)
