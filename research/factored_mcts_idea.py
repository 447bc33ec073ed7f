"""Does tree search (mctx Gumbel MuZero) on a learned factored DBN beat random shooting at an
equal budget of model steps on the discrete MuJoCo pushing task?

Question: experiments/factored_arm.py plans on the learned DBN by random shooting (1000
sequences x horizon 8 = 8000 model steps per action). A tree search reuses the prefixes it has
already expanded, so with the same number of model steps it should look further along the good
branches. Does Gumbel MuZero with S simulations (S model steps per action, batch 1) match or beat
random shooting with N sequences x T steps = S model steps? Value of a leaf: the heuristic
R(s) / (1 - gamma), "stay here forever", since there is no learned value function.

    python research/factored_mcts_idea.py --total-steps 3000 --simulations 64 --eval-episodes 20
    python experiments/sweep.py research/factored_mcts_idea.py --seeds 0 1 2 3 \\
        --grid simulations=16,64,256 --y eval/mcts/success_rate -- --total-steps 3000

Date: 2026-11-22. Status: exploring (tiny runs work end to end; no sweep yet).

One run: `--total-steps` macro-steps of uniformly random actions in the simulator
(prototypes/envs/discrete_arm.py), learn the DBN from them (BDeu, in-degree 4, backoff 2, as in
factored_arm.py), then evaluate three policies on the same `--eval-episodes` start states:
random actions, random shooting and MCTS on the learned model. Logs to runs/<run_name>/
(config.json, metrics.jsonl: one record per policy with eval/<policy>/success_rate and
eval/<policy>/return, model/... for the learned structure, perf/sps), or to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import mctx
import numpy as np

from prototypes import config as cfglib
from prototypes.config import arg
from prototypes.data.runs import open_run
from prototypes.envs.discrete_arm import DiscreteArmConfig, DiscreteArmEnv, exact_dbn
from prototypes.models.factored import (
    FactoredModelConfig,
    dbn_to_state,
    learn_dbn,
    make_factored_model,
)


@dataclass(frozen=True)
class Args:
    exp_name: str = arg("factored_mcts_idea", "the name of this experiment")
    seed: int = arg(1, "seed of the data collection, env resets and planners")
    total_steps: int = arg(3000, "random macro-steps collected to learn the DBN from")
    eval_episodes: int = arg(20, "evaluation episodes per policy (same start states)")
    max_steps: int = arg(30, "macro-steps per episode")
    simulations: int = arg(64, "MCTS simulations per action (= model steps)")
    horizon: int = arg(8, "random shooting horizon T; its population is simulations // T")
    gamma: float = arg(0.9, "discount of the search and of the leaf value R(s) / (1 - gamma)")
    out: str = arg("", "run directory (default: runs/<run_name>)")


def make_mcts_policy(model, model_state, args: Args, num_actions: int):
    """A jitted state -> action by Gumbel MuZero over the model (batch of one)."""

    def recurrent_fn(params, key, action, embedding):
        del params
        step = model.predict(model_state, key, embedding, action[:, None].astype(jnp.float32))
        out = mctx.RecurrentFnOutput(
            reward=step.reward,
            discount=args.gamma * (1.0 - step.done.astype(jnp.float32)),
            prior_logits=jnp.zeros((embedding.shape[0], num_actions)),
            value=jnp.where(step.done, 0.0, step.reward / (1.0 - args.gamma)),
        )
        return out, step.obs

    @jax.jit
    def act(key, state):
        embedding = state[None].astype(jnp.int32)
        root = mctx.RootFnOutput(prior_logits=jnp.zeros((1, num_actions)),
                                 value=jnp.zeros(1), embedding=embedding)
        out = mctx.gumbel_muzero_policy(None, key, root, recurrent_fn,
                                        num_simulations=args.simulations,
                                        max_num_considered_actions=num_actions)
        return out.action[0]

    return act


def make_shooting_policy(model, model_state, args: Args, num_actions: int):
    """A jitted state -> first action of the best of N random sequences (N x T = simulations)."""
    T = args.horizon
    N = max(args.simulations // T, 1)

    @jax.jit
    def act(key, state):
        key_seq, key_roll = jax.random.split(key)
        seqs = jax.random.randint(key_seq, (N, T), 0, num_actions)
        states = jnp.broadcast_to(state.astype(jnp.int32), (N,) + state.shape)

        def step(carry, xs):
            s, alive, ret, disc = carry
            k, a = xs
            out = model.predict(model_state, k, s, a[:, None].astype(jnp.float32))
            ret = ret + jnp.where(alive, disc * out.reward, 0.0)
            return (out.obs, alive & ~out.done, ret, disc * args.gamma), None

        init = (states, jnp.ones(N, bool), jnp.zeros(N), jnp.float32(1.0))
        (_, _, ret, _), _ = jax.lax.scan(step, init, (jax.random.split(key_roll, T), seqs.T))
        return seqs[jnp.argmax(ret), 0]

    return act


def collect_random(env: DiscreteArmEnv, rng: np.random.Generator, steps: int, seed: int):
    S, A, S2 = [], [], []
    episode = 0
    while len(S) < steps:
        s, _ = env.reset(seed=seed * 100_003 + episode)
        episode += 1
        while len(S) < steps:
            a = int(rng.integers(env.action_space.n))
            s2, _, terminated, truncated, _ = env.step(a)
            S.append(s), A.append(a), S2.append(s2)
            s = s2
            if terminated or truncated:
                break
    return np.array(S), np.array(A), np.array(S2)


def evaluate(env: DiscreteArmEnv, policy, args: Args) -> dict[str, float]:
    returns, successes, steps = [], [], 0
    start = time.perf_counter()
    for ep in range(args.eval_episodes):
        s, _ = env.reset(seed=10**6 + args.seed * 1000 + ep)
        total = 0.0
        for t in range(args.max_steps):
            s, r, terminated, truncated, _ = env.step(policy(s, ep, t))
            total, steps = total + r, steps + 1
            if terminated or truncated:
                break
        returns.append(total)
        successes.append(bool(terminated))
    return {"success_rate": float(np.mean(successes)), "return": float(np.mean(returns)),
            "sps": steps / (time.perf_counter() - start)}


def main(args: Args) -> Path:
    run_name = f"discrete_arm__{args.exp_name}__{args.seed}__{int(time.time())}"
    run = open_run(Path(args.out or f"runs/{run_name}"), dataclasses.asdict(args), resume=False)
    key = jax.random.key(args.seed)
    rng = np.random.default_rng(args.seed)
    env = DiscreteArmEnv(DiscreteArmConfig(max_steps=args.max_steps))
    spec = env.spec_factored

    t0 = time.perf_counter()
    S, A, S2 = collect_random(env, rng, args.total_steps, args.seed)
    collect_sps = len(S) / (time.perf_counter() - t0)
    mcfg = FactoredModelConfig(max_parents=4, score="bdeu", backoff=2)
    t0 = time.perf_counter()
    dbn, _ = learn_dbn(spec, S, A, S2, mcfg.max_parents, mcfg.score, mcfg.ess, mcfg.pseudocount,
                       mcfg.backoff)
    true_edges = exact_dbn(env.cfg.width).edges()
    run.log({"global_step": len(S), "model/edge_recall": len(dbn.edges() & true_edges)
             / len(true_edges), "model/edges": len(dbn.edges()),
             "perf/learn_seconds": time.perf_counter() - t0, "perf/sps": collect_sps})
    model = make_factored_model(mcfg, spec)
    model_state = dbn_to_state(dbn, mcfg.max_parents)

    planners = {
        "mcts": make_mcts_policy(model, model_state, args, spec.num_actions),
        "shooting": make_shooting_policy(model, model_state, args, spec.num_actions),
    }
    policies = {"random": lambda s, ep, t: int(rng.integers(spec.num_actions))}
    for name, act in planners.items():
        key_p = jax.random.fold_in(key, len(policies))
        policies[name] = (lambda s, ep, t, act=act, key_p=key_p:
                          int(act(jax.random.fold_in(jax.random.fold_in(key_p, ep), t),
                                  jnp.asarray(s))))
    for name, policy in policies.items():
        result = evaluate(env, policy, args)
        run.log({"global_step": len(S), "policy": name,
                 **{f"eval/{name}/{k}": v for k, v in result.items() if k != "sps"},
                 "perf/sps": result["sps"]})
        print(f"{name:>8}: success {result['success_rate']:.2f}, return {result['return']:.1f}"
              f" ({result['sps']:.0f} steps/s)")
    return run.path


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cfglib.add_arguments(parser, Args)
    return cfglib.from_args(Args, parser.parse_args(argv))


if __name__ == "__main__":
    main(parse_args())
