"""Task variants: parsing, ranges, what they write into the live model, seeding, placements."""

import json

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from prototypes.envs import make
from prototypes.envs.variants import (
    FACTORS,
    DistractorFactor,
    ScaleFactor,
    Variant,
    VariantWrapper,
    describe_variants,
    parse_variant,
)

FACTOR_CASES = [(task, name) for task in sorted(FACTORS) for name in FACTORS[task]]


def _disjoint_boxes(a, b) -> bool:
    """Two boxes (lo, hi) are disjoint when some axis separates them."""
    (alo, ahi), (blo, bhi) = a, b
    return any(ah < bl or bh < al for al, ah, bl, bh in zip(alo, ahi, blo, bhi, strict=True))


@pytest.mark.parametrize("task, name", FACTOR_CASES)
def test_ranges_a_and_b_are_disjoint_and_allowed(task, name):
    f = FACTORS[task][name]
    if isinstance(f, DistractorFactor):
        assert f.a == (0, 0) and 1 <= f.b[0] <= f.b[1]  # trained without, tested with some
        f.check(f.b[1])
    elif isinstance(f, ScaleFactor):
        assert f.a[0] < f.a[1] < f.b[0] < f.b[1]  # B lies above A, with a gap
        assert f.a[0] > 0
        f.check(f.a[0])
        f.check(f.b[1])
    else:
        assert _disjoint_boxes(f.a, f.b)
        for lo, hi in (f.a, f.b):
            f.check(tuple(lo))
            f.check(tuple(hi))


def test_parse_canonical_string_round_trips():
    v = parse_variant("pusher", " mass=B, damping=1.5 ,goal=0.1:-0.05,start=a")
    # settings sorted by factor name; A/B upper-cased; numbers kept as floats
    assert v == Variant(
        "pusher", (("damping", 1.5), ("goal", (0.1, -0.05)), ("mass", "B"), ("start", "A"))
    )
    assert str(v) == "damping=1.5,goal=0.1:-0.05,mass=B,start=A"
    assert parse_variant("pusher", str(v)) == v
    for empty in (None, "", "none", "None"):
        assert parse_variant("pusher", empty) == Variant("pusher")
    assert str(Variant("pusher")) == "none"
    assert parse_variant("pusher", "damping=0").settings == (("damping", 0.0),)  # >= 0 allowed


@pytest.mark.parametrize(
    "task, text, fragment",
    [
        ("pusher", "mass=-1", "mass=-1.0 is outside its physical range (mass multiplier > 0)"),
        ("pusher", "mass=0", "outside its physical range"),
        ("pusher", "mass=nan", "outside its physical range"),
        ("pusher", "damping=-0.1", "damping multiplier >= 0"),
        ("pusher", "gear=-2", "outside its physical range"),
        ("fetch_push", "friction=-1", "outside its physical range"),
        ("fetch_push", "size=0", "outside its physical range"),
        ("pusher", "colour=2", "unknown variant factor 'colour' for pusher: choose from mass,"),
        (
            "fetch_reach",
            "mass=2",
            "unknown variant factor 'mass' for fetch_reach: choose from goal",
        ),
        ("pusher", "mass=heavy", "the value must be a number, A or B"),
        ("pusher", "mass=1:2", "must be one number"),
        ("pusher", "goal=0.1", "needs 2 numbers x:y, A or B"),
        ("fetch_reach", "goal=0:0", "needs 3 numbers x:y:z"),
        ("pusher", "goal=3:0", "outside its allowed region x[-0.5,0.5] y[-0.5,0.5]"),
        ("pusher", "mass=2,mass=3", "given twice"),
        ("pusher", "mass", "write factor=VALUE"),
        ("cartpole", "mass=2", "unknown env 'cartpole'"),
    ],
)
def test_bad_variant_is_one_clear_line(task, text, fragment):
    with pytest.raises(ValueError) as err:
        parse_variant(task, text)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_make_rejects_a_bad_variant():
    with pytest.raises(ValueError, match="outside its physical range"):
        make("pusher", variant="mass=-1")
    with pytest.raises(ValueError, match="is for 'reacher', not 'pusher'"):
        make("pusher", variant=parse_variant("reacher", "mass=2"))


@pytest.mark.parametrize("task", sorted(FACTORS))
def test_describe_lists_every_factor_with_its_ranges(task):
    text = describe_variants(task)
    assert text.startswith(f"variants of {task}")
    for name, f in FACTORS[task].items():
        (line,) = [row for row in text.splitlines() if row.startswith(name + " ")]
        if isinstance(f, ScaleFactor):
            assert f"[{f.a[0]:g}, {f.a[1]:g}]" in line and f"[{f.b[0]:g}, {f.b[1]:g}]" in line


def test_no_variant_builds_exactly_the_unchanged_task():
    env = make("pusher")
    assert not any(isinstance(w, VariantWrapper) for w in _wrappers(env))
    obs, info = env.reset(seed=0)
    ref, _ = gym.make("Pusher-v5", max_episode_steps=100).reset(seed=0)
    np.testing.assert_array_equal(obs, ref)
    # the values gymnasium's seed 0 gives (tips_arm, object, goal), recorded before variants
    np.testing.assert_allclose(
        obs[14:23], [0.821, -0.6, 0.0, 0.25661105, -0.33770794, -0.275, 0.45, -0.05, -0.323], 1e-7
    )
    assert "variant" not in info
    np.testing.assert_array_equal(make("pusher", variant="none").reset(seed=0)[0], obs)


def _wrappers(env):
    while isinstance(env, gym.Wrapper):
        yield env
        env = env.env


def test_scale_variant_leaves_the_env_stream_alone():
    # a physics-only variant draws from its own stream: the first observation is the task's
    obs, info = make("pusher", variant="mass=B,damping=A").reset(seed=4)
    np.testing.assert_array_equal(obs, make("pusher").reset(seed=4)[0])
    assert set(info["variant"]) == {"mass", "damping"}


def test_pusher_scales_are_written_into_the_live_model_without_compounding():
    env = make("pusher", variant="mass=3,damping=0.3,gear=2,size=1.5")
    m = env.unwrapped.model
    obj = m.body("object").id
    geom = m.body_geomadr[obj]
    slides = [m.jnt_dofadr[m.joint(j).id] for j in ("obj_slidey", "obj_slidex")]
    for seed in range(3):  # resets rewrite nominal x factor, never factor^k
        _, info = env.reset(seed=seed)
        assert info["variant"] == {"damping": 0.3, "gear": 2.0, "mass": 3.0, "size": 1.5}
        # the cylinder: density 0.01, radius 0.05, half-height 0.05 -> pi 0.05^2 0.1 0.01 kg
        np.testing.assert_allclose(m.body_mass[obj], 3 * np.pi * 0.05**2 * 0.1 * 0.01, rtol=1e-12)
        np.testing.assert_allclose(m.dof_armature[slides], [0.12, 0.12])  # 3 x 0.04
        np.testing.assert_allclose(m.dof_damping[slides], [0.15, 0.15])  # 0.3 x 0.5
        np.testing.assert_allclose(m.actuator_gear[:, 0], [2.0] * 7)  # 2 x 1
        np.testing.assert_allclose(m.geom_size[geom, :2], [0.075, 0.05])  # radius 1.5 x 0.05
        np.testing.assert_allclose(m.geom_rbound[geom], np.hypot(0.075, 0.05))


def test_size_bounds_equal_a_recompiled_model():
    """The runtime resize gives the bounding sphere and boxes MuJoCo's compiler computes."""
    env = make("pusher", variant="size=1.5")
    env.reset(seed=0)
    live = env.unwrapped.model
    spec = mujoco.MjSpec.from_file(env.unwrapped.fullpath)
    spec.body("object").geoms[0].size[0] = 0.075
    ref = spec.compile()
    obj = live.body("object").id
    geom, bvh = live.body_geomadr[obj], live.body_bvhadr[obj]
    np.testing.assert_allclose(live.geom_size[geom], ref.geom_size[geom], atol=1e-12)
    np.testing.assert_allclose(live.geom_rbound[geom], ref.geom_rbound[geom], atol=1e-12)
    np.testing.assert_allclose(live.geom_aabb[geom], ref.geom_aabb[geom], atol=1e-12)
    np.testing.assert_allclose(live.bvh_aabb[bvh], ref.bvh_aabb[bvh], atol=1e-12)


def test_reacher_and_fetch_scales_read_back():
    env = make("reacher", variant="mass=2")
    env.reset(seed=0)
    m = env.unwrapped.model
    np.testing.assert_allclose(m.dof_armature, [2.0, 2.0, 0.0, 0.0])  # 2 x 1 on the arm joints
    np.testing.assert_allclose(m.body_mass[m.body("body0").id], 2 * 0.03560471674068432)

    env = make("fetch_push", variant="mass=3,friction=0.5,size=2")
    env.reset(seed=0)
    m = env.unwrapped.model
    block = m.geom("object0").id
    table = m.body_geomadr[m.body("table0").id]
    assert m.body_mass[m.body("object0").id] == pytest.approx(6.0)  # 3 x 2 kg
    np.testing.assert_allclose(m.geom_friction[[block, table], 0], [0.5, 0.5])  # 0.5 x 1
    np.testing.assert_allclose(m.geom_size[block], [0.05, 0.05, 0.025])  # x, y doubled


def test_same_seed_same_values_different_seed_different():
    text = "mass=A,damping=B,gear=A,goal=B,start=A"

    def values(seeds):
        env = make("pusher", variant=text)
        return [env.reset(seed=s)[1]["variant"] for s in seeds]

    first, second = values([7, None]), values([7, None])
    assert first == second  # the same reset seed, then the stream it starts
    assert json.loads(json.dumps(first)) == first  # plain floats and lists, for metrics.jsonl
    assert first[0] != first[1]
    other = values([8])[0]
    assert all(np.all(np.asarray(other[k]) != np.asarray(first[0][k])) for k in other)


@pytest.mark.parametrize("box", ["A", "B"])
def test_sampled_values_lie_in_their_range(box):
    names = [n for n, f in FACTORS["pusher"].items() if not isinstance(f, DistractorFactor)]
    env = make("pusher", variant=",".join(f"{n}={box}" for n in names))  # distractors: below
    for seed in range(20):
        values = env.reset(seed=seed)[1]["variant"]
        for name, value in values.items():
            f = FACTORS["pusher"][name]
            lo, hi = f.a if box == "A" else f.b
            assert np.all(np.asarray(lo) <= value) and np.all(np.asarray(value) <= hi), name
        # gymnasium's rule, kept by the placement: object more than 0.17 from the goal
        assert np.hypot(*np.subtract(values["start"], values["goal"])) > 0.17
    env = make("reacher", variant=f"goal={box}")
    for seed in range(20):
        assert np.hypot(*env.reset(seed=seed)[1]["variant"]["goal"]) < 0.2  # in the disk


def test_regions_put_goal_and_object_where_they_say():
    env = make("pusher", variant="goal=0.1:0.02,start=-0.1:-0.25")
    obs, _ = env.reset(seed=0)
    qpos = env.unwrapped.data.qpos
    # slides in gymnasium's order: obj y, obj x, goal y, goal x
    np.testing.assert_allclose(qpos[-4:], [-0.25, -0.1, 0.02, 0.1])
    # home (0.45, -0.05): object body z -0.275, goal body z -0.323
    np.testing.assert_allclose(obs[17:20], [0.35, -0.30, -0.275], atol=1e-12)
    np.testing.assert_allclose(obs[20:23], [0.55, -0.03, -0.323], atol=1e-12)

    env = make("reacher", variant="goal=0.1:-0.15")
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(env.unwrapped.data.qpos[-2:], [0.1, -0.15])
    np.testing.assert_allclose(obs[4:6], [0.1, -0.15])
    tip = env.unwrapped.data.xpos[env.unwrapped.model.body("fingertip").id]
    np.testing.assert_allclose(obs[8:10], tip[:2] - [0.1, -0.15], atol=1e-12)

    env = make("fetch_reach", variant="goal=0.1:0:0.25")
    obs, _ = env.reset(seed=0)
    grip = env.unwrapped.initial_gripper_xpos
    np.testing.assert_allclose(obs[-3:], grip + [0.1, 0.0, 0.25])


def test_fetch_push_regions():
    env = make("fetch_push", variant="goal=-0.1:0.25,start=0.12:-0.22")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    grip = u.initial_gripper_xpos
    np.testing.assert_allclose(obs[3:5], grip[:2] + [0.12, -0.22], atol=1e-9)  # block xy
    np.testing.assert_allclose(obs[-3:], [grip[0] - 0.1, grip[1] + 0.25, u.height_offset])
    np.testing.assert_allclose(u.goal, obs[-3:])  # the env scores against the same goal


def test_a_variant_built_directly_is_checked_too():
    with pytest.raises(ValueError, match="outside its physical range"):
        Variant("pusher", (("mass", -1.0),))
    with pytest.raises(ValueError, match="a range is A or B"):
        Variant("pusher", (("mass", "C"),))
    with pytest.raises(ValueError, match="unknown variant factor 'colour'"):
        Variant("pusher", (("colour", 1.0),))
