"""The structured world model against the flat ensemble on FetchPush: predict speed and one-step
object error on held-out contact and no-contact steps.

    python profiling/benchmark_structured.py                 # timing and the learning check
    python profiling/benchmark_structured.py --timing-only   # ms per predict call only

Timing: ms per jitted `predict` call at batch 1000 (a planner's population x particles), five
members, TS-inf, after compilation (best of `--repeats`, each ended by `block_until_ready`).

Learning check (a sanity check, not a test): `--episodes` episodes of uniformly random actions
plus as many of a scripted pusher (the gripper is driven, with noise, through a point a few cm
beyond the object, so it touches and moves it), fitted by both models at their defaults; then
the one-step error of the object's position (metres, mean of |predicted - true| with the
members' mean prediction) on held-out episodes of both kinds (other seeds), split into
"contact" steps (the object moved more than 1 mm) and "no contact" steps.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from prototypes.agents.episode import run_episode
from prototypes.envs import get_spec, make
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.models.structured import StructuredConfig, make_structured

TASK = "fetch_push"
OBJ, GRIP = slice(3, 6), slice(0, 3)
TABLE_Z = 0.41  # the object's centre rests at z = 0.425 on the table


def scripted(rng: np.random.Generator):
    """A pusher: drive the gripper at gain 10 to the object's height, then through a point 5 cm
    beyond the object along a random horizontal direction, plus noise."""
    angle = rng.uniform(0, 2 * np.pi)
    beyond = 0.05 * np.array([np.cos(angle), np.sin(angle), 0.0])
    noise = rng.uniform(0.05, 0.4)

    def policy(obs, t):
        grip, obj = obs[GRIP], obs[OBJ]
        target = obj + beyond
        if np.linalg.norm((obj - grip)[:2]) > 0.06 and grip[2] > obj[2] + 0.02:
            target = obj - beyond + np.array([0.0, 0.0, 0.03])  # approach from the far side
        a = np.concatenate([10.0 * (target - grip), [rng.uniform(-1, 1)]])
        return np.clip(a + noise * rng.standard_normal(4), -1.0, 1.0)

    return policy


def collect(env, episodes: int, seed: int, kind: str):
    rng = np.random.default_rng(seed)
    parts = []
    for ep in range(episodes):
        if kind == "random":
            policy = lambda obs, t: rng.uniform(-1.0, 1.0, 4)  # noqa: E731
        else:
            policy = scripted(rng)
        parts.append(run_episode(env, policy, reset_seed=seed * 100_000 + ep).transitions)
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def concat(*datas):
    return jax.tree.map(lambda *xs: np.concatenate(xs), *datas)


def time_predict(model, state, batch: int, repeats: int) -> tuple[float, float]:
    spec = get_spec(TASK)
    obs = jax.random.normal(jax.random.key(0), (batch, spec.obs_dim)) * 0.1
    act = jax.random.uniform(jax.random.key(1), (batch, spec.act_dim), minval=-1, maxval=1)
    f = jax.jit(model.predict)
    start = time.perf_counter()
    jax.block_until_ready(f(state, jax.random.key(2), obs, act))
    compile_s = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(state, jax.random.key(3 + i), obs, act))
        times.append(time.perf_counter() - start)
    return compile_s, 1e3 * min(times)


def object_errors(model, state, data) -> dict[str, float]:
    pred = jax.jit(model.predict)(
        state, jax.random.key(0), jnp.asarray(data.obs), jnp.asarray(data.action)
    )
    err = np.linalg.norm(np.asarray(pred.obs)[:, OBJ] - data.next_obs[:, OBJ], axis=-1)
    moved = np.linalg.norm(data.next_obs[:, OBJ] - data.obs[:, OBJ], axis=-1) > 1e-3
    # pushed off the table, the object falls: keep steps that start and end on the table
    on_table = (data.obs[:, OBJ.stop - 1] > TABLE_Z) & (data.next_obs[:, OBJ.stop - 1] > TABLE_Z)
    still = np.linalg.norm(np.asarray(pred.obs)[:, OBJ] - data.obs[:, OBJ], axis=-1)
    return {
        "contact": float(err[moved].mean()),
        "contact_on_table": float(err[moved & on_table].mean()),
        "n_contact_on_table": int((moved & on_table).sum()),
        "no_contact": float(err[~moved].mean()),
        "true_motion_contact": float(
            np.linalg.norm(data.next_obs[moved, OBJ] - data.obs[moved, OBJ], axis=-1).mean()
        ),
        "spurious_motion_no_contact": float(still[~moved].mean()),
        "n_contact": int(moved.sum()),
        "n_no_contact": int((~moved).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="training episodes per kind")
    parser.add_argument("--test-episodes", type=int, default=20, help="held-out episodes per kind")
    parser.add_argument("--batch", type=int, default=1000, help="predict batch for timing")
    parser.add_argument("--repeats", type=int, default=20, help="timed predict calls")
    parser.add_argument("--timing-only", action="store_true", help="skip the learning check")
    parser.add_argument("--hidden", type=int, default=None, help="structured hidden_size")
    parser.add_argument("--no-prior", action="store_true", help="structured without the prior")
    parser.add_argument("--cutoff", type=float, default=0.0, help="structured edge cut-off (m)")
    args = parser.parse_args()
    spec = get_spec(TASK)
    s_cfg = StructuredConfig(kinematic_prior=not args.no_prior, cutoff=args.cutoff)
    if args.hidden:
        s_cfg = StructuredConfig(
            hidden_size=args.hidden, kinematic_prior=not args.no_prior, cutoff=args.cutoff
        )
    models = {
        "ensemble": make_ensemble(EnsembleConfig(), spec),
        "ensemble_h128": make_ensemble(EnsembleConfig(hidden_size=128), spec),
        "structured": make_structured(s_cfg, spec),
    }
    states = {k: m.init(jax.random.key(0), None) for k, m in models.items()}
    print(f"predict, batch {args.batch}, 5 members, TS-inf (best of {args.repeats}):")
    for name, model in models.items():
        compile_s, ms = time_predict(model, states[name], args.batch, args.repeats)
        print(f"  {name:14s} compile {compile_s:5.2f} s   {ms:7.3f} ms per call")
    if args.timing_only:
        return
    env = make(TASK, seed=0)
    start = time.perf_counter()
    train = concat(
        collect(env, args.episodes, 1, "random"), collect(env, args.episodes, 2, "scripted")
    )
    test = {
        "random": collect(env, args.test_episodes, 3, "random"),
        "scripted": collect(env, args.test_episodes, 4, "scripted"),
    }
    test["all"] = concat(test["random"], test["scripted"])
    moved = np.linalg.norm(train.next_obs[:, OBJ] - train.obs[:, OBJ], axis=-1) > 1e-3
    print(
        f"data: {len(train.obs)} train transitions ({moved.sum()} with the object moving), "
        f"collected in {time.perf_counter() - start:.1f} s"
    )
    for name, model in models.items():
        start = time.perf_counter()
        state, metrics = model.fit(states[name], jax.random.key(1), train)
        fit_s = time.perf_counter() - start
        exp_model = {
            "ensemble": lambda: make_ensemble(EnsembleConfig(propagation="expectation"), spec),
            "ensemble_h128": lambda: make_ensemble(
                EnsembleConfig(hidden_size=128, propagation="expectation"), spec
            ),
            "structured": lambda: make_structured(
                StructuredConfig(**{**s_cfg.__dict__, "propagation": "expectation"}), spec
            ),
        }[name]()
        print(f"{name}: fit {fit_s:.1f} s, {metrics['model/epochs']} epochs")
        for split, data in test.items():
            e = object_errors(exp_model, state, data)
            print(
                f"  {split:8s} object error (mm): contact {1e3 * e['contact']:6.2f} "
                f"(true motion {1e3 * e['true_motion_contact']:5.2f}, n={e['n_contact']}), "
                f"no contact {1e3 * e['no_contact']:6.3f} (n={e['n_no_contact']}); contact on "
                f"the table {1e3 * e['contact_on_table']:6.2f} (n={e['n_contact_on_table']})"
            )


if __name__ == "__main__":
    main()
