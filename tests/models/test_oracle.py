"""The oracle model reproduces the simulator: rewards and planning returns equal the env's."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import fetch, get_spec, make
from prototypes.models.oracle import make_oracle, physics_copier, physics_fields, sensor_model
from prototypes.planning import evaluate_sequences


def _rollout_env(name, seed, actions):
    env = make(name)
    obs, _ = env.reset(seed=seed)
    rewards, observations = [], []
    for a in actions:
        obs, r, *_ = env.step(a)
        rewards.append(r)
        observations.append(obs)
    return np.array(rewards), np.array(observations)


@pytest.mark.parametrize(
    "name, steps, atol",
    [
        ("reacher", 10, 1e-5),
        ("pusher", 10, 1e-5),
    ],
)
def test_planning_return_equals_env_rewards(name, steps, atol):
    spec = get_spec(name)
    actions = (
        np.random.default_rng(0)
        .uniform(spec.action_low, spec.action_high, (steps, spec.act_dim))
        .astype(np.float32)
    )
    env_rewards, env_obs = _rollout_env(name, 5, actions)

    env = make(name)
    obs, _ = env.reset(seed=5)
    oracle = make_oracle(spec, env)
    root = oracle.encode(oracle.init(None, None), obs)
    step_fn = lambda k, o, a: oracle.predict((), k, o, a)
    # two identical candidates, two particles: every rollout must give the env's return
    seqs = jnp.asarray(np.stack([actions, actions]))
    ret = jax.jit(lambda r, s: evaluate_sequences(step_fn, jax.random.key(0), r, s, 2))(root, seqs)
    np.testing.assert_allclose(ret, [env_rewards.sum()] * 2, atol=atol * steps)

    # and step by step, the observations and rewards match
    state = jax.tree.map(lambda x: x[None], root)
    for t in range(steps):
        out = step_fn(None, state, jnp.asarray(actions[t : t + 1]))
        np.testing.assert_allclose(out.reward[0], env_rewards[t], atol=atol)
        np.testing.assert_allclose(out.obs.obs[0], env_obs[t], atol=max(atol, 1e-5) * 10)
        state = out.obs


# --- variants: the oracle plans on the physics the env steps ------------------------------------


def _moving_object(env):
    """Give Pusher's object a velocity, so its mass and damping shape the next steps at once."""
    u = env.unwrapped
    qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
    qvel[-4:-2] = [0.4, -0.3]  # obj_slidey, obj_slidex, m/s
    u.set_state(qpos, qvel)
    return u._get_obs()


def _one_step_errors(name, variant, steps, build_before_reset=False):
    """Per step: the oracle's one-step prediction from the env's state against env.step."""
    spec = get_spec(name)
    actions = (
        np.random.default_rng(1)
        .uniform(spec.action_low, spec.action_high, (steps, spec.act_dim))
        .astype(np.float32)
    )
    env = make(name, variant=variant)
    if build_before_reset:  # the oracle exists before the variant's values are drawn
        env.reset(seed=0)
        oracle = make_oracle(spec, env)
    obs, info = env.reset(seed=5)
    if not build_before_reset:
        oracle = make_oracle(spec, env)
    if name == "pusher":
        obs = _moving_object(env)
    predict = jax.jit(lambda root, a: oracle.predict((), jax.random.key(0), root, a))
    pred_obs, pred_rew, env_obs, env_rew = [], [], [], []
    for a in actions:
        root = jax.tree.map(lambda x: x[None], oracle.encode((), obs))
        out = predict(root, jnp.asarray(a[None]))
        obs, r, *_ = env.step(a)
        pred_obs.append(np.asarray(out.obs.obs[0]))
        pred_rew.append(float(out.reward[0]))
        env_obs.append(obs)
        env_rew.append(r)
    return np.array(pred_obs), np.array(pred_rew), np.array(env_obs), np.array(env_rew), info


@pytest.mark.parametrize(
    "name, variant",
    [
        ("pusher", "mass=3"),  # the object's inertia along its slides x3
        ("pusher", "damping=0.3"),  # its slide damping x0.3
        ("reacher", "mass=3"),  # the arm's links and joint armature x3
    ],
)
def test_oracle_matches_env_step_on_a_variant(name, variant):
    pred_obs, pred_rew, env_obs, env_rew, _ = _one_step_errors(name, variant, 8)
    np.testing.assert_allclose(pred_obs, env_obs, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(pred_rew, env_rew, atol=1e-6)
    # and the variant matters: the unchanged task's next observations differ by far more
    _, _, nominal_obs, _, _ = _one_step_errors(name, None, 8)
    assert np.abs(nominal_obs - env_obs).max() > 1e-3


def test_oracle_follows_variant_values_drawn_after_it_was_built():
    pred_obs, pred_rew, env_obs, env_rew, info = _one_step_errors(
        "pusher", "mass=B,damping=A", 4, build_before_reset=True
    )
    assert info["variant"]["mass"] >= 2.5
    np.testing.assert_allclose(pred_obs, env_obs, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(pred_rew, env_rew, atol=1e-6)


def test_sensor_model_takes_every_physics_field_of_the_changed_live_model():
    spec = get_spec("pusher")
    env = make("pusher", variant="mass=3,damping=0.3,size=2,gear=1.5")
    env.reset(seed=0)
    live = env.unwrapped.model
    model = sensor_model(make("pusher"), spec.sensor_bodies)  # compiled from the nominal file
    assert model.body_mass[live.body("object").id] != live.body_mass[live.body("object").id]
    fields = physics_fields(model, live)
    physics_copier(model, live)()
    public = [n for n in dir(live) if not n.startswith("_")]
    for name in [n for n in public if isinstance(getattr(live, n), np.ndarray)]:
        if name in fields:
            np.testing.assert_array_equal(getattr(model, name), getattr(live, name), err_msg=name)
        else:  # only the sensors and the name tables, which the added sensors change
            assert name.startswith(("sensor_", "name_", "names_map")), name
    assert len(fields) > 400
    for struct in ("opt", "stat"):
        for f in dir(getattr(live, struct)):
            if not f.startswith("_"):
                value = getattr(getattr(live, struct), f)
                if not callable(value):
                    np.testing.assert_array_equal(getattr(getattr(model, struct), f), value)


# --- Fetch: a mocap-driven arm (the goal rides along in the planning state) --------------------


def _push_actions(env, obs, steps):
    """Steer the gripper at the block, at its own height, so the pushes make contact; the
    actions are recorded so they can be replayed open loop."""
    actions = []
    for _ in range(steps):
        a = np.zeros(4, np.float32)
        a[:2] = np.clip((obs[3:5] - obs[0:2]) / 0.05, -1, 1)
        a[3] = 0.7  # a finger command, which the blocked gripper must ignore
        obs, *_ = env.step(a)
        actions.append(a)
    return np.array(actions)


def _fetch_one_step(name, variant, steps, seed=2):
    """One-step predictions from the env's state along a pushing trajectory, against env.step."""
    spec = get_spec(name)
    env = make(name, variant=variant)
    obs, _ = env.reset(seed=seed)
    oracle = make_oracle(spec, env, threads=1)
    predict = jax.jit(lambda root, a: oracle.predict((), jax.random.key(0), root, a))
    rng = np.random.default_rng(0)
    pred_obs, pred_rew, env_obs, env_rew = [], [], [], []
    for _ in range(steps):
        a = rng.uniform(-1, 1, 4).astype(np.float32)
        if name == "fetch_push":
            a[:2], a[2] = np.clip((obs[3:5] - obs[0:2]) / 0.05, -1, 1), 0.0
        root = jax.tree.map(lambda x: x[None], oracle.encode((), obs))
        out = predict(root, jnp.asarray(a[None]))
        obs, r, *_ = env.step(a)
        pred_obs.append(np.asarray(out.obs.obs[0]))
        pred_rew.append(float(out.reward[0]))
        env_obs.append(obs)
        env_rew.append(r)
    return np.array(pred_obs), np.array(pred_rew), np.array(env_obs), np.array(env_rew)


@pytest.mark.parametrize(
    "name, variant", [("fetch_reach", None), ("fetch_push", None), ("fetch_push", "mass=3")]
)
def test_fetch_oracle_matches_env_step(name, variant):
    pred_obs, pred_rew, env_obs, env_rew = _fetch_one_step(name, variant, 8)
    np.testing.assert_allclose(pred_obs, env_obs, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(pred_rew, env_rew, atol=1e-6)
    if name == "fetch_push":  # the gripper reached the block and pushed it (contact happened)
        assert np.linalg.norm(env_obs[-1, 3:5] - env_obs[0, 3:5]) > 0.02
        assert np.abs(env_obs[:, 14:20]).max() > 1e-3  # the block's velocities are nonzero


def test_the_fetch_variant_mass_changes_the_push():
    """The mass=3 case above is a real test: the same pushes move a 6 kg block differently."""
    env = make("fetch_push")
    actions = _push_actions(env, env.reset(seed=2)[0], 8)
    moved = {}
    for variant in (None, "mass=3"):
        env = make("fetch_push", variant=variant)
        env.reset(seed=2)
        moved[variant] = np.array([env.step(a)[0][3:6] for a in actions])
    assert np.abs(moved["mass=3"] - moved[None]).max() > 1e-3


def test_fetch_push_planning_return_and_observations_equal_the_env():
    """Open-loop rollouts of a pushing sequence through predict (the goal carried from the root,
    the physics state and warm start carried between steps) equal the env's trajectory."""
    spec = get_spec("fetch_push")
    env = make("fetch_push")
    obs0, _ = env.reset(seed=2)
    actions = _push_actions(env, obs0, 10)
    env_rewards, env_obs = _rollout_env("fetch_push", 2, actions)
    assert np.linalg.norm(env_obs[-1, 3:5] - obs0[3:5]) > 0.02  # the block moved

    env = make("fetch_push")
    obs, _ = env.reset(seed=2)
    # the dense reward, so the returns compare distances rather than 0/1 indicators
    dense = fetch.reward_fns("fetch_push")["dense"]
    oracle = make_oracle(dataclasses.replace(spec, reward_fn=dense), env, threads=2)
    root = oracle.encode((), obs)
    step_fn = lambda k, o, a: oracle.predict((), k, o, a)
    seqs = jnp.asarray(np.stack([actions, actions]))
    ret = jax.jit(lambda r, s: evaluate_sequences(step_fn, jax.random.key(0), r, s, 1))(root, seqs)
    env_dense = -np.linalg.norm(env_obs[:, 3:6] - env_obs[:, 25:28], axis=-1)
    np.testing.assert_allclose(ret, [env_dense.sum()] * 2, atol=1e-5)

    state = jax.tree.map(lambda x: x[None], root)
    for t in range(len(actions)):
        out = step_fn(None, state, jnp.asarray(actions[t : t + 1]))
        np.testing.assert_allclose(out.obs.obs[0], env_obs[t], atol=1e-6, rtol=1e-6)
        np.testing.assert_allclose(out.reward[0], env_dense[t], atol=1e-6)
        state = out.obs
    assert env_rewards.shape == (10,)  # the env's own (sparse) rewards came from the same steps
