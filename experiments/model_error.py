"""Model error: how well each world model predicts the object it should push, with and without
contact, at equal data.

    python experiments/model_error.py --env fetch_push --models ensemble,structured --seed 0
    python experiments/model_error.py --seed 0 --structured.rollout-horizon 0 \\
        --structured.nll-beta 0                # the structured model without two of its levers

Data: `--train-episodes` episodes, half with uniform random actions and half with a scripted
pusher (the gripper goes behind the object, away from the goal, then pushes towards the goal,
with Gaussian action noise `--noise`), so that contact is common; `--test-episodes` held-out
episodes the same way from other reset seeds. Every model kind in `--models` is built from the
registry at its config defaults (the flat ensemble's and the structured model's from
`--ensemble.*` and `--structured.*`), with `propagation=expectation` where its config has that
field (the prediction is the model's mean), and fit once on the same training transitions. A
model whose config is not its default is reported under its kind and the fields changed
("structured nll_beta=0.0 rollout_horizon=0"), and the default results CSV gets them in its
name, so a lever run never overwrites the default report.

Errors are of the object's position (the OBJECT entity's position slice of the task's layout),
in metres, on held-out episodes:
- one-step: |f(s_t, a_t) - s_{t+1}| at the object;
- k-step (`--horizon`, 10): an open-loop rollout of the model from the real s_t with the real
  actions a_t .. a_{t+k-1}, against the real s_{t+k}.
A step is a contact step when the real object moved more than `--contact-threshold` (1 mm) in it
(nothing but the gripper moves the object); a k-step window is a contact window when any of its
steps is. Reported: mean error per model x (one-step, k-step) x (contact, no-contact), and the
ratio of each model's error to the first model's. A reference row, `no_motion`, predicts that
the object stays where it is: its error is the object's real displacement.

The run directory gets config.json, metrics.jsonl (one line per model, split and horizon) and
plots/model_error.png; the same numbers go to `experiments/results/model_error_<env>_<seed>.csv`
(`--results-csv` to change it, `--no-results-csv` to skip) so they leave the machine with the
code.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cli import CommandLine, progress_bar
from prototypes.agents.episode import drive_episode
from prototypes.config import arg, check
from prototypes.data.runs import RunDir, episode_seed
from prototypes.envs import ALL_TASKS, get_spec, make
from prototypes.envs.layout import ARM, GOAL, OBJECT
from prototypes.envs.variants import parse_variant
from prototypes.models.base import TrainingDivergedError
from prototypes.models.ensemble import EnsembleConfig
from prototypes.models.registry import check_model, get_model_kind, make_model, model_kinds
from prototypes.models.structured import StructuredConfig
from prototypes.types import Transition

TEST_SEED_OFFSET = 100_000  # held-out episode e resets with episode_seed(seed, offset + e)
NO_MOTION = "no_motion"  # the reference row: the object predicted to stay where it is


@dataclass(frozen=True)
class ModelErrorConfig:
    env: str = arg("fetch_push", "task with an arm, an object and a goal in its layout")
    seed: int = arg(0, "seeds the resets, the action noise, the model inits and training")
    variant: str = arg("none", "task variant (--variant help lists them)")
    models: str = arg("ensemble,structured", "comma-separated model kinds, first is the baseline")
    train_episodes: int = arg(100, "training episodes (half random, half scripted pushing)")
    test_episodes: int = arg(20, "held-out episodes (half random, half scripted pushing)")
    horizon: int = arg(10, "k of the k-step open-loop error")
    noise: float = arg(0.3, "std of the Gaussian noise on the scripted pusher's actions")
    contact_threshold: float = arg(1e-3, "metres the object must move in a step to count")
    results_csv: str = arg(
        "experiments/results/model_error_{env}_{seed}{changed}.csv",
        "where the per-model figures go as CSV ('' for nowhere; {changed}: the non-default "
        "model fields, empty at the defaults)",
    )
    ensemble: EnsembleConfig = arg(EnsembleConfig(), "the flat ensemble (--models ensemble)")
    structured: StructuredConfig = arg(StructuredConfig(), "the structured model")

    def __post_init__(self) -> None:
        check(
            self.env in ALL_TASKS,
            f"unknown env {self.env!r}: choose from {', '.join(sorted(ALL_TASKS))}",
        )
        types = {e.type for e in get_spec(self.env).layout.entities}
        check(
            {ARM, OBJECT, GOAL} <= types,
            f"env {self.env!r} has no object to push: model_error.py needs an arm, an object and "
            "a goal (fetch_push, pusher)",
        )
        parse_variant(self.env, self.variant)
        check(bool(self.kinds), "models must name at least one model kind")
        for kind in self.kinds:
            check(
                kind in model_kinds(),
                f"unknown model {kind!r}: choose from {', '.join(model_kinds())}",
            )
            check(
                not get_model_kind(kind).needs_env and not get_model_kind(kind).codebook,
                f"model {kind!r} is not a learned model of continuous actions: "
                "model_error.py compares learned models",
            )
            check_model(kind, self.model_config(kind), self.env)
        check(self.train_episodes >= 2, f"train_episodes must be >= 2, got {self.train_episodes}")
        check(self.test_episodes >= 2, f"test_episodes must be >= 2, got {self.test_episodes}")
        check(self.horizon >= 1, f"horizon must be >= 1, got {self.horizon}")
        check(self.noise >= 0, f"noise must be >= 0, got {self.noise}")
        check(
            self.contact_threshold > 0,
            f"contact_threshold must be > 0, got {self.contact_threshold}",
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in self.models.split(",") if k)

    def model_config(self, kind: str):
        """The config kind `kind` is built with: this script's section for it, or its defaults."""
        own = {"ensemble": self.ensemble, "structured": self.structured}
        return own.get(kind) or get_model_kind(kind).config()

    def changed(self, kind: str) -> list[str]:
        """Every field of kind's config that differs from its default, as "field=value"."""
        cfg, default = self.model_config(kind), get_model_kind(kind).config()
        return [
            f"{f.name}={getattr(cfg, f.name)}"
            for f in dataclasses.fields(cfg)
            if getattr(cfg, f.name) != getattr(default, f.name)
        ]

    def label(self, kind: str) -> str:
        """The name a model's rows carry: its kind, then the fields changed from its defaults."""
        return " ".join([kind, *self.changed(kind)])

    @property
    def results_path(self) -> Path | None:
        """The results CSV, or None for nowhere: `results_csv` with {env}, {seed} and {changed}
        ("" at the defaults, else "_" and every used model's changed fields)."""
        if not self.results_csv:
            return None
        changed = [f"{k}-{c}" for k in self.kinds for c in self.changed(k)]
        tag = "".join("_" + c.replace("=True", "").replace("=False", "=off") for c in changed)
        tag = tag.replace("=", "")
        return Path(self.results_csv.format(env=self.env, seed=self.seed, changed=tag))


COMMAND = CommandLine(
    prog="model_error.py",
    description=__doc__,
    config=ModelErrorConfig,
    out="runs/model_error_{env}_{seed}",
)
parse_config = COMMAND.parse  # argv -> (config, namespace)


def main(argv: list[str] | None = None) -> RunDir:
    return COMMAND.run(argv, train, fatal=(TrainingDivergedError,))


# --- data ---------------------------------------------------------------------------------------


def pusher_act(spec, rng: np.random.Generator, noise: float):
    """A scripted pusher for a task with an arm, an object and a goal: drive the arm's position
    to a point 5 cm behind the object (away from the goal), then towards the goal through the
    object; actions are proportional to the position error, clipped, plus Gaussian noise.
    Needs a Cartesian action (the first 3 entries move the arm: Fetch); for other tasks the
    noise alone acts."""
    layout = spec.layout
    arm = layout.entities_of_type(ARM)[0].position
    obj = layout.entities_of_type(OBJECT)[0].position
    goal = layout.entities_of_type(GOAL)[0].position
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    cartesian = spec.name.startswith("fetch")

    def act(state, t, obs):
        action = rng.normal(0.0, noise, spec.act_dim)
        if cartesian:
            o, g, a = obs[obj], obs[goal], obs[arm]
            to_goal = (g - o) / max(np.linalg.norm(g - o), 1e-6)
            behind = o - 0.05 * to_goal
            lined_up = np.linalg.norm(a - behind) < 0.02 or state
            target = o + 0.05 * to_goal if lined_up else behind
            action[:3] += np.clip((target - a) * 10.0, -1.0, 1.0)
            state = lined_up
        return np.clip(action, low, high).astype(np.float32), state

    return act


def collect(cfg: ModelErrorConfig, env, spec, episodes: int, offset: int, bar) -> list[Transition]:
    """`episodes` episodes (even: uniform random, odd: scripted pusher) as Transitions [T]."""
    rng = np.random.default_rng([cfg.seed, offset])
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    out = []
    for e in range(episodes):
        if e % 2 == 0:
            u = rng.uniform(size=(spec.episode_steps, spec.act_dim))

            def act(state, t, obs, u=u):
                return (low + (high - low) * u[t]).astype(np.float32), state
        else:
            act = pusher_act(spec, rng, cfg.noise)
        result, _ = drive_episode(env, act, False, episode_seed(cfg.seed, offset + e))
        out.append(result.transitions)
        bar.update(1)
    return out


# --- errors -------------------------------------------------------------------------------------


def object_errors(
    predict, episodes: list[Transition], obj: slice | tuple, horizon: int, threshold: float
) -> dict[str, np.ndarray]:
    """Per-step object errors of a model on whole episodes.

    Args:
        predict: (obs [B, O], action [B, A]) -> next obs [B, O], the model's mean.
        episodes: Transitions with leaves [T, ...].
        obj: the object's position index in the observation.
        horizon: k of the open-loop error.
        threshold: metres of real object motion that make a step a contact step.

    Returns:
        one_step [N], one_contact [N] bool, k_step [M], k_contact [M] bool: every step and every
        full k-step window of every episode; k_episode [M], k_start [M]: each window's episode
        index and first step (window m ends at episodes[k_episode[m]].next_obs[k_start[m] +
        horizon - 1]).
    """
    one, one_c, k_err, k_c, k_ep, k_start = [], [], [], [], [], []
    for e, ep in enumerate(episodes):
        obs, act, nxt = (np.asarray(x) for x in (ep.obs, ep.action, ep.next_obs))
        T = obs.shape[0]
        moved = np.linalg.norm(nxt[:, obj] - obs[:, obj], axis=-1) > threshold
        pred = np.asarray(predict(obs, act))
        one.append(np.linalg.norm(pred[:, obj] - nxt[:, obj], axis=-1))
        one_c.append(moved)
        W = T - horizon + 1
        if W <= 0:
            continue
        state = obs[:W]  # every window's start, rolled forward together
        for j in range(horizon):
            state = np.asarray(predict(state, act[j : j + W]))
        k_err.append(
            np.linalg.norm(state[:, obj] - nxt[horizon - 1 : horizon - 1 + W, obj], axis=-1)
        )
        k_c.append(np.array([moved[s : s + horizon].any() for s in range(W)]))
        k_ep.append(np.full(W, e))
        k_start.append(np.arange(W))
    return {
        "one_step": np.concatenate(one),
        "one_contact": np.concatenate(one_c),
        "k_step": np.concatenate(k_err) if k_err else np.zeros(0),
        "k_contact": np.concatenate(k_c) if k_c else np.zeros(0, bool),
        "k_episode": np.concatenate(k_ep) if k_ep else np.zeros(0, int),
        "k_start": np.concatenate(k_start) if k_start else np.zeros(0, int),
    }


def summarise(kind: str, errors: dict[str, np.ndarray], horizon: int) -> list[dict]:
    """One record per (horizon, split) with the mean error and the count."""
    rows = []
    for steps, err, contact in (
        (1, errors["one_step"], errors["one_contact"]),
        (horizon, errors["k_step"], errors["k_contact"]),
    ):
        for split, mask in (("contact", contact), ("no_contact", ~contact)):
            rows.append(
                {
                    "model": kind,
                    "steps": steps,
                    "split": split,
                    "mean_error_m": float(np.mean(err[mask])) if mask.any() else float("nan"),
                    "count": int(mask.sum()),
                }
            )
    return rows


def _mean_next_obs(model, state, key, obs, action):
    return model.predict(state, key, obs, action).obs


def _mean_config(kind: str, cfg=None):
    """`cfg` (kind's defaults if None) predicting its mean (propagation "expectation") where it
    has a propagation field."""
    cfg = get_model_kind(kind).config() if cfg is None else cfg
    if any(f.name == "propagation" for f in dataclasses.fields(cfg)):
        cfg = dataclasses.replace(cfg, propagation="expectation")
    return cfg


def train(cfg: ModelErrorConfig, run: RunDir, *, resume: bool, progress: bool = True) -> RunDir:
    del resume  # one short pass: --resume reruns it
    spec = get_spec(cfg.env)
    env = make(cfg.env, variant=cfg.variant)
    obj = spec.layout.entities_of_type(OBJECT)[0].position
    bar = progress_bar(
        cfg.train_episodes + cfg.test_episodes, 0, progress, desc="episodes", unit="episode"
    )
    train_eps = collect(cfg, env, spec, cfg.train_episodes, 0, bar)
    test_eps = collect(cfg, env, spec, cfg.test_episodes, TEST_SEED_OFFSET, bar)
    bar.close()
    data = jax.tree.map(lambda *xs: jnp.concatenate([jnp.asarray(x) for x in xs]), *train_eps)
    records = []
    for i, kind in enumerate(cfg.kinds):
        model = make_model(kind, _mean_config(kind, cfg.model_config(kind)), spec)
        key_init, key_fit, key_pred = jax.random.split(
            jax.random.fold_in(jax.random.key(cfg.seed), i), 3
        )
        state = model.init(key_init, jax.tree.map(lambda x: x[0], data))
        started = time.perf_counter()
        state, fit_metrics = model.fit(state, key_fit, data)
        seconds = time.perf_counter() - started
        print(f"model_error.py: {cfg.label(kind)}: " + _fit_summary(fit_metrics, seconds))
        step = jax.jit(functools.partial(_mean_next_obs, model, state, key_pred))
        errors = object_errors(step, test_eps, obj, cfg.horizon, cfg.contact_threshold)
        for row in summarise(cfg.label(kind), errors, cfg.horizon):
            run.log({**row, "train_transitions": int(data.obs.shape[0])})
            records.append(row)
        print(
            f"model_error.py: {cfg.label(kind)}: "
            + ", ".join(
                f"{r['steps']}-step {r['split']} {r['mean_error_m'] * 100:.2f} cm (n={r['count']})"
                for r in records
                if r["model"] == cfg.label(kind)
            )
        )
    # for scale: a "model" that predicts the object never moves (its error is the real motion)
    still = object_errors(lambda o, a: o, test_eps, obj, cfg.horizon, cfg.contact_threshold)
    for row in summarise(NO_MOTION, still, cfg.horizon):
        run.log({**row, "train_transitions": 0})
        records.append(row)
    _report(cfg, run, records)
    return run


def _fit_summary(metrics: dict, seconds: float) -> str:
    """One line on a fit: wall seconds (compilation included), epochs, and where the multi-step
    fine-tuning's held-out error was best when it ran (near --*.rollout-steps: still
    improving)."""
    line = f"fit {seconds:.1f} s"
    if "model/epochs" in metrics:
        line += f", {metrics['model/epochs']} epochs"
    if "model/rollout_best_step" in metrics:
        line += (
            f", multi-step fine-tuning best at step {metrics['model/rollout_best_step']:.0f}"
            " (members' mean)"
        )
    return line


def _report(cfg: ModelErrorConfig, run: RunDir, records: list[dict]) -> None:
    first = cfg.kinds[0]
    base = {
        (r["steps"], r["split"]): r["mean_error_m"]
        for r in records
        if r["model"] == cfg.label(first)
    }
    for r in records:
        r["ratio_to_" + first] = r["mean_error_m"] / base[(r["steps"], r["split"])]
    path = cfg.results_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        (1, "contact"),
        (1, "no_contact"),
        (cfg.horizon, "contact"),
        (cfg.horizon, "no_contact"),
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / (len(cfg.kinds) + 1)
    for i, kind in enumerate((*map(cfg.label, cfg.kinds), NO_MOTION)):
        vals = {
            (r["steps"], r["split"]): r["mean_error_m"] * 100 for r in records if r["model"] == kind
        }
        ax.bar(
            [g + i * width for g in range(len(groups))],
            [vals[k] for k in groups],
            width,
            label=kind,
        )
    ax.set_xticks([g + width * len(cfg.kinds) / 2 for g in range(len(groups))])
    ax.set_xticklabels([f"{s}-step\n{split.replace('_', ' ')}" for s, split in groups])
    ax.set_ylabel("object position error (cm)")
    ax.set_title(f"held-out object error on {cfg.env}, seed {cfg.seed}")
    ax.legend()
    fig.tight_layout()
    (run.path / "plots").mkdir(exist_ok=True)
    fig.savefig(run.path / "plots" / "model_error.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
