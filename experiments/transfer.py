"""The zero-shot transfer suite: learn a world model on one range of a task, plan on another.

    python experiments/transfer.py --env pusher --models ensemble,oracle --factors mass
    python experiments/transfer.py --env fetch_push --models ensemble,structured,oracle \\
        --factors goal,start,distractors --seeds 3
    python experiments/transfer.py --env pusher --factors mass --context given   # CARL-style
    python experiments/transfer.py --env fetch_push --models ensemble,structured,oracle \\
        --factors blocks                                 # one block -> two, zero-shot
    python experiments/transfer.py ... --resume          # finish an interrupted suite
    python experiments/transfer.py --env fetch_push --models structured,oracle \\
        --factors goal,start,distractors --trained structured=/work/runs/fp_struct_s{seed}

For each learned model (`--models`, registry kinds; `oracle` is the true simulator) and each
seed (0 .. --seeds - 1), the model is trained once, online with its planner exactly as
experiments/pets.py trains it (the same episode schedule, experiments/mpc_episodes.py: random
episodes, then refit after every episode and plan; the model is refit after the last one too),
on the training distribution: every factor of `--factors` drawn from its training half of range
A ("Atrain"). Then, with no further training, it plans on each condition:

- train:      every factor in Atrain (the distribution it learned on);
- <f>:held:   factor f from "Aheld", the held-out half of range A, the others in Atrain;
- <f>:test:   factor f from the disjoint test range B (or the range `--factors f=lo~hi` gives),
              the others in Atrain;
- blocks:test: (fetch_push, `--factors ...,blocks`) two blocks instead of one (below).

Held-out values inside A (prototypes/envs/variants.py): range A of a multiplier is cut into 8
equal bins; training draws only from the even bins, "held" only from the odd ones, so every
held-out value lies inside A's span but in a bin that no training episode drew from
(interpolation). A region's A box is cut into 4 bins per axis and coloured as a checkerboard:
training cells have an even sum of bin indices, held-out cells an odd one. Distractors have no
held-out condition (A is the single count 0: trained without any).

Fixed evaluation episodes: episode i of every condition resets with seed
`episode_seed(EVAL_SEED, i)`, for every model, every training seed and the oracle, and a
variant's values are drawn from the reset seed, so all of them face the same start states, goals
and drawn factor values (the per-episode records carry the values, so this is checked, see
tests/experiments/test_transfer.py). The planner's key of episode i of a condition depends on
(seed, condition, i) only, the same for every model. The oracle needs no training: per seed it
plans on each condition's live physics (one particle: it is deterministic). Its seeds differ in
planner noise only, so `--oracle-seeds 1` runs it with seed 0 alone (the same episodes and planner
keys as seed 0 of the full suite), at a third of the cost for three seeds.

Models trained by experiments/pets.py (`--trained KIND=PATTERN`, comma-separated or repeated):
seed S of model KIND is then not trained here but taken from the newest complete checkpoint of
the pets.py run at PATTERN.format(seed=S), read only (no lock taken, nothing written there; a
live run may go on), copied once into reused/<KIND>_seed<S>/ with origin.json (its source,
config.json and episodes), and never read again, even by --resume. The run must have this
suite's env, model kind and model config and variant none; a pets.py run trains on the task's
own distribution, which is range A only for the factors in `OWN_IS_A` (FetchPush goal, start
and distractors; Pusher start and distractors; FetchReach goal), so only those are allowed, the
context must be hidden, and the model's `:held` conditions are skipped (it saw the whole of A:
nothing is held out; the table says "not held out"). Every row says where its model was
trained (`trained_on`). The planner that evaluates it is this suite's.

Context (`--context`): hidden (pure zero-shot: the observation is the task's own) or given (the
factors' values appended to the observation as constant features, CARL-style, in training and
evaluation; prototypes/envs/context.py). The oracle always plans on the true physics and never
sees the context, on the same episodes with the same planner keys, so its rows are the same in
both contexts: with `--results`, a context-given suite takes them from its context-hidden twin's
results CSV (the same flags but --context) where that has them, instead of planning them again
(their `trained_on` names the file), and its tables show them.

Output in the run directory (default runs/transfer_<env>_<context>):
- metrics.jsonl: one line per evaluation episode (model, seed, condition, episode, reset seed,
  return, for Fetch success and final distance, and the variant values drawn);
- train/<model>_seed<S>/: the training run of each learned model (pets-like run directory with
  its checkpoint: the trained model, reused by every condition and by --resume, never retrained);
  reused/<model>_seed<S>/ instead for a `--trained` one;
- table.md (also printed) and summary.csv: per model x condition the mean over seeds of the
  per-seed mean return (Pusher, Reacher) or success rate (Fetch) over the evaluation episodes,
  with a percentile-bootstrap 95% interval over seeds, and the transfer ratio per factor;
- per_seed.csv (and, with --results, added to
  experiments/results/transfer_<env>_<context>_<factors>.csv), one row per model x seed x
  condition, with `trained_on` (this suite, a pets.py run, or the simulator); a model that cannot
  take a condition (the flat ensemble on blocks:test) has its rows there too, in summary.csv and
  in the table, with no number and the reason in `note`;
- plots/transfer.png: the table as grouped bars with the intervals (the reason where a model
  cannot take a condition).

Transfer ratio: test / train for success rates. For returns, which are negative costs here, it
is train / test (cost at train over cost at test), so that in both cases 1 means nothing was
lost and 0.8 means 80% of the in-range performance was kept (nan when the train figure is 0).

More objects than trained on (`--factors ...,blocks`, fetch_push only, context hidden only): the
condition `blocks:test` plans on `fetch_push2` (prototypes/envs/fetch_push2.py: FetchPush with a
second block of the same size and material; the goal, the reward and `is_success` are on block
1) with every model trained on one block (here, or reused with --trained: one block is exactly
its range A), with no further training, on the same evaluation episodes (reset seeds
`episode_seed(EVAL_SEED, i)`; fetch_push2's block 1 and goal are fetch_push's for a reset seed,
block 2 is drawn from the seed too). The structured model's fitted state is carried over with
`models.structured.transfer_state` (weights are shared per entity type; the normalisers are
re-laid out per type, never refitted) and planned with this suite's planner on fetch_push2's
spec, the planning reward derived from fetch_push2's layout (as pets.py does for it: block 1's).
The oracle plans on fetch_push2's true physics, both blocks, and hands the planner the columns
the reward reads (fetch_push's view of the observation: `fetch.FIRST_OBJECT_VIEW`). A model whose
input is the flat observation (the flat ensemble) cannot take a second block: its cell says
"cannot: fixed observation size" in the table and the CSVs, instead of a number. blocks:test
applies no other factor (fetch_push2 has none): it is fetch_push2's own reset distribution with
the nominal physics, whatever the other factors' Atrain is; with `--factors blocks` alone, train
is plain fetch_push, so the two conditions differ by block 2 only. Its ratio is blocks:test / train.

A suite in parts (when the whole does not fit in one sitting): `--first-seed S --seeds N` runs
seeds S .. S+N-1 (the oracle's: S .. S+M-1 with `--oracle-seeds M`), `--only-conditions
train,goal:test` only those conditions; each part is its own run directory. With `--results` each
part adds its rows to experiments/results/transfer_<env>_<context>_<factors>.csv (a row of the
same model, seed and condition is replaced), whose sidecar .json holds the flags all parts share
(everything but --models, the seeds, --only-conditions and --trained): a part whose shared flags
differ is refused before it runs. Each part prints the table of every part so far (and draws it
in plots/transfer_results.png); `--results-table` with the suite's flags prints it and runs
nothing:

    python experiments/transfer.py --env fetch_push --models structured --factors goal,start \\
        --first-seed 1 --seeds 1 --train-episodes 100 --results
    python experiments/transfer.py --env fetch_push --models oracle --factors goal,start \\
        --only-conditions goal:test --seeds 1 --train-episodes 100 --results
    python experiments/transfer.py --env fetch_push --factors goal,start --train-episodes 100 \\
        --results-table

`--resume` recomputes nothing that finished: finished trainings are loaded from their
checkpoints (an interrupted one continues from its last episode), and finished evaluation
episodes are read from metrics.jsonl.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

import jax
import numpy as np

from experiments.cli import CommandLine, Layer, progress_bar
from experiments.mpc_episodes import Episode, episode_rounds, run_mpc_episodes, uniform_act
from experiments.pets import LAYERS as PETS_LAYERS
from experiments.pets import planning_reward
from prototypes.agents import episode as episode_lib
from prototypes.agents.mpc import MPCAgent, MPCState, make_mpc_agent, planning_act
from prototypes.config import ConfigError, arg, check, declared_defaults, to_dict
from prototypes.data import replay
from prototypes.data.runs import (
    CheckpointError,
    RunDir,
    RunWarning,
    config_differences,
    episode_seed,
    has_checkpoint,
    open_run,
)
from prototypes.data.stats import bootstrap_ci
from prototypes.envs import ALL_TASKS, FETCH_TASKS, fetch, get_spec, make
from prototypes.envs.context import ContextObservation, context_width, with_context
from prototypes.envs.costs import push_entities
from prototypes.envs.registry import EnvSpec
from prototypes.envs.variants import (
    FACTORS,
    DistractorFactor,
    Span,
    Variant,
    parse_variant,
)
from prototypes.models.base import TrainingDivergedError, WorldModel
from prototypes.models.ensemble import EnsembleConfig
from prototypes.models.registry import OracleConfig, check_model, get_model_kind, make_model
from prototypes.models.structured import StructuredConfig, transfer_state
from prototypes.planning import PlannerConfig, make_planner

# The factors whose training range A is the task's own reset distribution (variants.py: a region
# factor marked "gymnasium: A"; distractors, whose A is the count 0), per task: a pets.py run with
# variant none trained on exactly A for these, and only for these (none on a task not listed).
# Its scale factors (mass, ...) saw only the nominal x1, Pusher's goal only its home point, and
# Reacher's goal both A and B.
OWN_IS_A = {
    "fetch_push": frozenset({"goal", "start", "distractors"}),
    "fetch_reach": frozenset({"goal"}),
    "pusher": frozenset({"start", "distractors"}),
    "reacher": frozenset(),
}
REUSED = "reused"  # run/reused/<kind>_seed<S>/: a pets.py model copied here (--trained)
ORIGIN = "origin.json"  # beside the copy: where it came from; written last (the copy's commit)
EVAL_SEED = 900_001  # evaluation episode i resets with episode_seed(EVAL_SEED, i)
EVAL_TAG = 0x65766C  # folds the run key into the evaluation stream ("evl")
TRAIN = "train"
BLOCKS = "blocks"  # the factor "more objects than trained on" (module docstring)
MORE_OBJECTS = {"fetch_push": "fetch_push2"}  # task -> the same task with a second block
CANNOT = "cannot: fixed observation size"  # the cell of a model that cannot take more objects
BLOCKS_HELP = (
    "and, in this suite only: blocks  one more block than trained on: condition blocks:test plans "
    "zero-shot on {task} (a second block, the goal on the first); A = 1 block (train), test = 2; "
    "no value or range; structured and oracle only (the flat ensemble: " + CANNOT + "); context "
    "hidden only"
)
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class TransferConfig:
    env: str = arg("pusher", "task: reacher, pusher, fetch_reach or fetch_push")
    models: str = arg(
        "ensemble,oracle",
        "world models, comma-separated registry kinds (ensemble, structured, oracle: the true "
        "simulator on the same episodes)",
    )
    factors: str = arg(
        "mass",
        "variant factors, comma-separated; f=lo~hi replaces a multiplier's test range B "
        "(e.g. mass=0.25~0.4); on fetch_push also blocks (two blocks, zero-shot); --factors help "
        "lists them",
    )
    context: Literal["hidden", "given"] = arg(
        "hidden",
        "hidden: the model never sees the factors' values (zero-shot); given: they are appended "
        "to its observation (CARL)",
    )
    seeds: int = arg(
        3, "training seeds first_seed .. first_seed+seeds-1 (intervals are over seeds)"
    )
    oracle_seeds: int = arg(
        0,
        "seeds first_seed .. first_seed+oracle_seeds-1 of the oracle (0: all --seeds). It trains "
        "nothing, so its seeds differ in planner noise only; 1 divides its cost (about a minute "
        "per FetchPush episode) by --seeds, and its interval is then a single value",
    )
    first_seed: int = arg(
        0,
        "the first seed (a suite in parts: --first-seed 2 --seeds 1 is seed 2 alone; with "
        "--results the parts' rows add up)",
    )
    only_conditions: str = arg(
        "",
        "evaluate only these conditions, comma-separated, named as the table's columns "
        "(e.g. train,goal:test); empty: all. With --results the parts' rows add up",
    )
    train_episodes: int = arg(100, "training episodes per learned model and seed, random included")
    random_episodes: int = arg(1, "random-action episodes before planning starts in training")
    eval_episodes: int = arg(50, "evaluation episodes per condition (the same for every model)")
    reward: Literal["task", "dense", "sparse", "shaped"] = arg(
        "task", "reward the planner maximises (as in pets.py; the table reports the env's own)"
    )
    results: bool = arg(
        False,
        "also write the per-seed CSV to experiments/results/transfer_<env>_<context>_<factors>.csv",
    )
    planner: PlannerConfig = arg(PlannerConfig(), "planner (the oracle plans with 1 particle)")
    ensemble: EnsembleConfig = arg(EnsembleConfig(), "the flat ensemble (--models ensemble)")
    structured: StructuredConfig = arg(StructuredConfig(), "the structured model")
    oracle: OracleConfig = arg(OracleConfig(), "the true simulator")
    trained: str = arg(
        "",
        "reuse models experiments/pets.py trained instead of training them here: KIND=PATTERN, "
        "comma-separated or the flag repeated; PATTERN.format(seed=S) is seed S's pets run "
        "directory, read only (its newest checkpoint), e.g. "
        "structured=/work/runs/fp_struct_s{seed}",
    )

    def __post_init__(self) -> None:
        check(
            self.env in ALL_TASKS,
            f"unknown env {self.env!r}: choose from {', '.join(sorted(ALL_TASKS))}",
        )
        check(
            self.env in FETCH_TASKS or self.reward in ("task", "shaped"),
            f"reward {self.reward!r} is for the Fetch tasks; {self.env} takes task or shaped",
        )
        if self.reward == "shaped" and self.env not in FETCH_TASKS:
            try:
                push_entities(get_spec(self.env).layout)
            except ValueError as e:
                check(False, f"reward 'shaped' on {self.env}: {e}")
        kinds = self.model_list
        check(bool(kinds), "models is empty: name at least one model kind")
        check(len(set(kinds)) == len(kinds), f"models {self.models!r} names a kind twice")
        for kind in kinds:
            check_model(kind, self.model_config(kind), self.env)
        tests = factor_tests(self.env, self.factors)  # one line naming a bad factor or range
        check(
            BLOCKS not in tests or self.context == "hidden",
            f"factor {BLOCKS!r} with --context given: two blocks change no factor value to give "
            "the model (the second block is one more entity); use --context hidden",
        )
        check(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        check(self.first_seed >= 0, f"first_seed must be >= 0, got {self.first_seed}")
        names = list(conditions(self))
        for c in self.only_list:
            check(
                c in names,
                f"only_conditions names {c!r}: this suite's conditions are {', '.join(names)}",
            )
        check(
            0 <= self.oracle_seeds <= self.seeds,
            f"oracle_seeds must be in [0, seeds={self.seeds}] (0: all), got {self.oracle_seeds}",
        )
        check(self.train_episodes >= 1, f"train_episodes must be >= 1, got {self.train_episodes}")
        check(
            1 <= self.random_episodes <= self.train_episodes,
            f"random_episodes must be in [1, train_episodes={self.train_episodes}], got "
            f"{self.random_episodes}",
        )
        check(self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}")
        self._check_trained(kinds)

    def _check_trained(self, kinds: list[str]) -> None:
        """--trained: KIND=PATTERN items naming learned kinds of --models, once each."""
        if not self.trained.strip():
            return
        seen: set[str] = set()
        for item in self.trained.split(","):
            kind, eq, pattern = (x.strip() for x in item.partition("="))
            check(
                bool(kind) and bool(eq) and bool(pattern),
                f"trained item {item.strip()!r} is not KIND=PATTERN "
                "(e.g. structured=/work/runs/fp_struct_s{seed})",
            )
            check(kind not in seen, f"trained names model {kind!r} twice")
            seen.add(kind)
            check(kind in kinds, f"trained model {kind!r} is not in --models {self.models!r}")
            check(
                not get_model_kind(kind).needs_env,
                f"trained model {kind!r} is the true simulator: there is no trained model to reuse",
            )
            try:
                pattern.format(seed=0)
            except (KeyError, IndexError, ValueError) as e:
                check(
                    False,
                    f"trained pattern {pattern!r} does not format with seed only "
                    f"({type(e).__name__}: {e}); write {{seed}} where the seed goes",
                )
            check(
                self.seeds == 1 or pattern.format(seed=0) != pattern.format(seed=1),
                f"trained pattern {pattern!r} names one run for all {self.seeds} seeds: "
                "write {seed} where the seed goes",
            )
        check(
            self.context == "hidden",
            "trained with --context given: a pets.py run never saw context features "
            "(use --context hidden)",
        )
        own = OWN_IS_A.get(self.env, frozenset())
        # one block is the whole of range A of `blocks`: a pets.py run trained on exactly that
        other = [f for f in factor_tests(self.env, self.factors) if f not in own | {BLOCKS}]
        check(
            not other,
            f"trained with factor {other[0] if other else ''!r}: a pets.py run (variant none) "
            f"trained on {self.env}'s own distribution, which is range A only for "
            f"{', '.join(sorted(own)) or 'no factor'} (use --trained only with those)",
        )

    @property
    def model_list(self) -> list[str]:
        return [k.strip() for k in self.models.split(",") if k.strip()]

    @property
    def only_list(self) -> list[str]:
        return [c.strip() for c in self.only_conditions.split(",") if c.strip()]

    @property
    def trained_runs(self) -> dict[str, str]:
        """{model kind: pattern of its pets.py run directories} from --trained."""
        items = [item.partition("=") for item in self.trained.split(",") if item.strip()]
        return {kind.strip(): pattern.strip() for kind, _, pattern in items}

    def model_config(self, kind: str) -> Any:
        """The config of model kind `kind`: this suite's field for it, or the kind's defaults."""
        own = {"ensemble": self.ensemble, "structured": self.structured, "oracle": self.oracle}
        if kind in own:
            return own[kind]
        try:
            return get_model_kind(kind).config()
        except ValueError as e:
            check(False, str(e))


def factor_tests(task: str, text: str) -> dict[str, str]:
    """{factor: its test setting} from `--factors` ("mass,goal" or "mass=0.25~0.4,goal").

    The test setting is "B" unless given; that of `blocks` is the two-block task's name
    (`MORE_OBJECTS`). Raises `ConfigError` (one line) for an unknown factor, a repeated one, a
    bad range (empty, inverted, outside the physical range), or `blocks` on a task that has no
    two-block version or with a value.
    """
    if task not in FACTORS:
        check(False, f"env {task!r} has no variant factors: choose from {', '.join(FACTORS)}")
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",")]:
        check(bool(part), f"factors {text!r} has an empty item: name factors of {task}")
        name, eq, spec = part.partition("=")
        name = name.strip()
        if name == BLOCKS:
            check(
                task in MORE_OBJECTS,
                f"factor {BLOCKS!r} (more objects than trained on) exists for "
                f"{', '.join(MORE_OBJECTS)} only, not {task}",
            )
            check(
                not eq or spec.strip() in ("2", "B"),
                f"factor {part!r}: {BLOCKS} takes no value (its test is 2 blocks): write {BLOCKS}",
            )
            check(name not in out, f"factor {name!r} is given twice in {text!r}")
            out[name] = MORE_OBJECTS[task]
            continue
        known = [*FACTORS[task], *([BLOCKS] if task in MORE_OBJECTS else [])]
        check(
            name in FACTORS[task],
            f"unknown variant factor {name!r} for {task}: choose from {', '.join(known)}",
        )
        check(name not in out, f"factor {name!r} is given twice in {text!r}")
        spec = spec.strip() if eq else "B"
        setting = dict(parse_variant(task, f"{name}={spec}").settings)[name]
        check(
            setting in ("B",) or isinstance(setting, Span),
            f"factor {part!r}: a test range is lo~hi (a multiplier's own range) or B",
        )
        out[name] = str(setting)
    return out


# --- conditions ---------------------------------------------------------------------------------


def conditions(cfg: TransferConfig) -> dict[str, Variant]:
    """{condition name: its variant}, in table order: train, then per factor held and test.
    The variant of `blocks:test` is the two-block task's own (`Variant("fetch_push2")`)."""
    tests = factor_tests(cfg.env, cfg.factors)
    base = {name: "Atrain" for name in tests if name != BLOCKS}

    def variant(**changed: str) -> Variant:
        text = ",".join(f"{k}={v}" for k, v in {**base, **changed}.items())
        return parse_variant(cfg.env, text)

    out = {TRAIN: variant()}
    for name, test in tests.items():
        if name == BLOCKS:
            out[f"{BLOCKS}:test"] = Variant(test)  # no other factor: fetch_push2 has none
            continue
        if not isinstance(FACTORS[cfg.env][name], DistractorFactor):
            out[f"{name}:held"] = variant(**{name: "Aheld"})
        out[f"{name}:test"] = variant(**{name: test})
    return out


def make_env(cfg: TransferConfig, variant: Variant, context: bool) -> Any:
    """The env of one condition (the variant's task: fetch_push2 for blocks:test), with the
    context features appended if `context`."""
    env = make(variant.task, variant=variant)
    return ContextObservation(env, variant) if context else env


class RecordReset:
    """Wraps an env to keep the info dict of its last reset (the drawn variant values)."""

    def __init__(self, env: Any) -> None:
        self.env, self.info = env, {}

    def reset(self, **kw: Any):
        obs, self.info = self.env.reset(**kw)
        return obs, self.info

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


# --- training -----------------------------------------------------------------------------------


def planning_spec(cfg: TransferConfig, width: int) -> EnvSpec:
    """The spec a learned model and its planner see: the planner's reward, context appended."""
    task = get_spec(cfg.env)
    spec = dataclasses.replace(task, reward_fn=planning_reward(cfg.reward, task))
    return with_context(spec, width)


# --- more objects than trained on (blocks:test) -------------------------------------------------


def blocks_spec(cfg: TransferConfig) -> EnvSpec:
    """The spec a learned model plans fetch_push2 with: its layout, and the planning reward
    derived from it as pets.py derives it for `--env fetch_push2` (block 1's)."""
    task = get_spec(MORE_OBJECTS[cfg.env])
    return dataclasses.replace(task, reward_fn=planning_reward(cfg.reward, task))


def cannot_take_blocks(cfg: TransferConfig, kind: str) -> str:
    """Why model `kind` cannot plan on more objects than it was trained on (`CANNOT`), or ""
    if it can: the true simulator and the structured model (weights shared per entity type) can;
    a model whose input is the flat observation cannot."""
    if get_model_kind(kind).needs_env or isinstance(cfg.model_config(kind), StructuredConfig):
        return ""
    return CANNOT


def blocks_agent(cfg: TransferConfig, kind: str, planner_cfg: Any) -> MPCAgent:
    """The agent that plans fetch_push2 with learned model `kind` (its state: `blocks_state`)."""
    spec = blocks_spec(cfg)
    model = make_model(kind, cfg.model_config(kind), spec)
    return make_mpc_agent(model, make_planner(planner_cfg, spec), spec, 1)


def blocks_state(cfg: TransferConfig, kind: str, agent: MPCAgent, trained: MPCState) -> MPCState:
    """`agent`'s state (`blocks_agent`) whose model is `trained`'s fitted one-block model carried
    over to fetch_push2 (`transfer_state`; no new data, nothing refitted). Its buffer is empty:
    nothing is trained on two blocks."""
    example = replay.zero_transition(agent.spec.obs_dim, agent.spec.act_dim)
    model = transfer_state(trained.model, cfg.model_config(kind), planning_spec(cfg, 0), agent.spec)
    return MPCState(
        model=model,
        plan=agent.planner.init(),
        buffer=replay.init(example, 1),
        episode=trained.episode,
    )


def oracle_view(model: WorldModel, task: str) -> WorldModel:
    """The oracle of the one-object task built on the live env of `task` (fetch_push2), which
    simulates that env's whole physics (both blocks: it is compiled from the env's model file and
    reads the env's full physics state), handing the planner the one-object task's view of the
    observation (`fetch.FIRST_OBJECT_VIEW`: block 1, the gripper and the goal), the columns the
    planning reward of `task` reads. Its predictions equal those columns of the env's next
    observation (tests/experiments/test_transfer.py)."""
    cols = np.asarray(fetch.FIRST_OBJECT_VIEW[task][1], np.int32)

    def encode(state: Any, obs: Any) -> Any:
        return model.encode(state, np.asarray(obs)[..., cols])

    return dataclasses.replace(model, encode=encode)


def train_model(
    cfg: TransferConfig, run: RunDir, kind: str, agent: MPCAgent, seed: int, *, progress: bool
) -> MPCState:
    """Train (or load, or finish training) model `kind` for `seed` in run/train/<kind>_seed<S>.

    A training whose run directory holds a checkpoint continues from it (a finished one runs no
    episode and returns the trained state); one that never finished an episode starts over.
    """
    path = run.path / "train" / f"{kind}_seed{seed}"
    sub_cfg = {
        **to_dict(cfg),
        "kind": kind,
        "seed": seed,
        "variant": str(conditions(cfg)[TRAIN]),
    }
    resume = has_checkpoint(path)
    if not resume and path.exists():
        shutil.rmtree(path)  # started but no episode finished: nothing to keep
    # a training saved before a config field existed resumes when the field is at its default
    sub = open_run(path, sub_cfg, resume=resume, argv=[], added_defaults=declared_defaults(cfg))
    try:
        env = make_env(cfg, conditions(cfg)[TRAIN], cfg.context == "given")
        low, high = np.asarray(agent.spec.action_low), np.asarray(agent.spec.action_high)
        T = agent.spec.episode_steps

        def record(ep: Episode) -> dict:
            return {
                "episode": ep.index + 1,
                "env_steps": (ep.index + 1) * T,
                "return": ep.result.episode_return,
                "random": ep.random,
                **ep.fit_metrics,
            }

        return run_mpc_episodes(
            agent,
            env,
            sub,
            seed=seed,
            episodes=cfg.train_episodes,
            random_episodes=cfg.random_episodes,
            explore=lambda key: uniform_act(key, low, high, T),
            fits_after=lambda ep: True,  # the model that is evaluated has seen every episode
            record=record,
            resume=resume,
            progress=progress,
            desc=f"train {kind} seed {seed}",
            postfix=lambda ep, line: {"ep": ep.index + 1, "ret": f"{line['return']:.1f}"},
        )
    finally:
        sub.close()


# --- models trained by pets.py (--trained) -------------------------------------------------------


def pets_run(cfg: TransferConfig, kind: str, seed: int) -> tuple[Path, dict]:
    """The pets.py run directory reused as model `kind` of `seed`, and its config.json, checked
    against this suite. Reads only: takes no lock and writes nothing there.

    Raises:
        ConfigError (one line): no run or no checkpoint there, not a pets.py run, or a run whose
            env, model kind, variant (only none) or model config differs from this suite's
            (naming the first differing field and both values).
    """
    path = Path(cfg.trained_runs[kind].format(seed=seed))
    what = f"trained {kind} seed {seed}"
    check((path / "config.json").is_file(), f"{what}: no pets.py run at {path} (no config.json)")
    try:
        meta = RunDir(path).config()
    except CheckpointError as e:
        check(False, f"{what}: {e}")
    saved = meta["config"]
    needed = ("env", "model_kind", "variant", "episodes", "random_episodes")
    check(
        all(k in saved for k in needed),
        f"{what}: {path} is not a pets.py run (its config has no {', '.join(needed)})",
    )
    if saved["env"] == cfg.env:  # canonical form ("" is none too); another env is named below
        try:
            saved = {**saved, "variant": str(parse_variant(cfg.env, saved["variant"]))}
        except ConfigError:
            pass  # shown as it is
    ours = {"env": cfg.env, "model_kind": kind, "variant": "none"}
    ours.update({f"model.{k}": v for k, v in to_dict(cfg.model_config(kind)).items()})
    # a field added since the run was saved matches at its declared default (as for --resume)
    added = {f"model.{k}": v for k, v in declared_defaults(cfg.model_config(kind)).items()}
    ours = {k: v for k, v in ours.items() if k in saved or k not in added or v != added[k]}
    for name in [*ours, *sorted(k for k in saved if k.startswith("model.") and k not in ours)]:
        theirs, mine = saved.get(name, "(no such field)"), ours.get(name, "(no such field)")
        check(
            theirs == mine,
            f"{what}: {path} differs from this suite in {name}: the run has {theirs!r}, "
            f"this suite {mine!r}",
        )
    check(
        has_checkpoint(path, complete=True),
        f"{what}: no checkpoint in {path / 'checkpoints'} (the run has not finished an episode)",
    )
    return path, meta


def fitted_episodes(config: dict, episode: int) -> int:
    """How many episodes of data the model of a pets.py run's checkpoint after `episode`
    episodes was last fit on: pets.py refits after every round of `num_envs` episodes
    (experiments/mpc_episodes.py) except the run's last."""
    total = config["episodes"]
    rounds = episode_rounds(total, config["random_episodes"], config.get("num_envs", 1))
    ends = [r[-1] + 1 for r in rounds]
    return max([n for n in ends if n <= episode and n < total], default=0)


def copy_pets_model(cfg: TransferConfig, kind: str, seed: int, path: Path) -> None:
    """Copy the model of the newest complete checkpoint of `kind`'s pets.py run for `seed` into
    `path` (a checkpoint holding the model state only), then write `path`/origin.json (the
    source, its config.json, the episodes it saw, the `trained_on` text), which commits it.

    A newest generation still being written by the live run is skipped for the one before it
    (`RunDir.load_checkpoint`), without a warning.

    Raises:
        CheckpointError (one line): the checks of `pets_run`, an unusable checkpoint there, or a
            model that was never fit.
    """
    if path.exists():
        shutil.rmtree(path)  # an interrupted copy: nothing evaluated with it yet
    try:
        source, meta = pets_run(cfg, kind, seed)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        saved = RunDir(source).load_checkpoint()
    state = saved.get("state") if isinstance(saved, dict) else None
    if not isinstance(state, dict) or "model" not in state or "episode" not in state:
        raise CheckpointError(f"trained {kind} seed {seed}: {source}'s checkpoint is no MPC agent")
    episode, total = int(np.asarray(state["episode"])), meta["config"]["episodes"]
    fit_on = fitted_episodes(meta["config"], episode)
    if fit_on < 1:
        raise CheckpointError(
            f"trained {kind} seed {seed}: the model in {source} (after episode {episode} of "
            f"{total}) was never fit: wait for its first fit"
        )
    origin = {
        "kind": kind,
        "seed": seed,
        "source": str(source.resolve()),
        "episode": episode,
        "episodes": total,
        "fit_on": fit_on,
        "trained_on": f"pets run {source.resolve()}, fit on {fit_on} episode"
        f"{'s' if fit_on != 1 else ''} (checkpoint after episode {episode} of {total}), "
        "whole of A",
        "source_config": meta,
    }
    RunDir(path).save_checkpoint({"state": state["model"]})
    tmp = path / (ORIGIN + ".tmp")
    tmp.write_text(json.dumps(origin, indent=1, sort_keys=True) + "\n")
    tmp.replace(path / ORIGIN)


def copy_reused(cfg: TransferConfig, run: RunDir) -> None:
    """Copy every --trained model that has no complete copy in run/reused/<kind>_seed<S> yet, at
    the suite's start (so the checkpoints used are the newest when the suite was launched). A
    resumed suite whose copies are complete never reads the pets runs again."""
    for kind in cfg.trained_runs:
        for seed in suite_seeds(cfg):
            path = run.path / REUSED / f"{kind}_seed{seed}"
            if not ((path / ORIGIN).is_file() and has_checkpoint(path, complete=True)):
                copy_pets_model(cfg, kind, seed, path)


def reuse_model(
    cfg: TransferConfig, run: RunDir, kind: str, agent: MPCAgent, seed: int
) -> MPCState:
    """The agent state whose model is `kind`'s pets.py model for `seed` (--trained), loaded from
    its copy in run/reused/<kind>_seed<S> (`copy_reused`): no training episode runs."""
    path = run.path / REUSED / f"{kind}_seed{seed}"
    fresh = agent.init(jax.random.key(seed))
    return fresh.replace(model=RunDir(path).load_state(like=fresh.model))


def origins(cfg: TransferConfig, run: RunDir | None) -> dict[tuple[str, int], str]:
    """{(kind, seed): the `trained_on` text of its reused pets.py model} (read from the copies)."""
    out: dict[tuple[str, int], str] = {}
    if run is None:
        return out
    for kind in cfg.trained_runs:
        for seed in suite_seeds(cfg):
            path = run.path / REUSED / f"{kind}_seed{seed}" / ORIGIN
            if path.is_file():
                out[(kind, seed)] = json.loads(path.read_text())["trained_on"]
    return out


def trained_on(cfg: TransferConfig, kind: str, seed: int, known: dict) -> str:
    """Where model `kind` of `seed` was trained, for the rows: this suite, a pets.py run, or
    nowhere (the true simulator)."""
    if get_model_kind(kind).needs_env:
        return "not trained (true simulator)"
    if kind in cfg.trained_runs:
        source = cfg.trained_runs[kind].format(seed=seed)
        return known.get((kind, seed), f"pets run {source}, whole of A")
    return f"this suite, {cfg.train_episodes} episodes, Atrain"


def suite_seeds(cfg: TransferConfig) -> range:
    """The learned models' seeds: --first-seed .. --first-seed + --seeds - 1."""
    return range(cfg.first_seed, cfg.first_seed + cfg.seeds)


def model_seeds(cfg: TransferConfig, kind: str) -> range:
    """The seeds model `kind` is evaluated with: `suite_seeds`, or for the true simulator the
    first --oracle-seeds of them when that is set."""
    if get_model_kind(kind).needs_env and cfg.oracle_seeds:
        return range(cfg.first_seed, cfg.first_seed + cfg.oracle_seeds)
    return suite_seeds(cfg)


def selected_conditions(cfg: TransferConfig) -> dict[str, Variant]:
    """`conditions`, keeping only those --only-conditions names (all if it names none)."""
    only = set(cfg.only_list)
    return {c: v for c, v in conditions(cfg).items() if not only or c in only}


def model_conditions(cfg: TransferConfig, kind: str) -> list[str]:
    """The conditions model `kind` is evaluated on: all of them, except that a reused pets.py
    model (--trained) skips the `:held` ones (it trained on the whole of A: nothing is held
    out), a model that cannot take more objects (`cannot_take_blocks`) skips blocks:test, and
    --only-conditions keeps only those named."""
    return [
        c
        for c in selected_conditions(cfg)
        if not (kind in cfg.trained_runs and c.endswith(":held"))
        and not (c == f"{BLOCKS}:test" and cannot_take_blocks(cfg, kind))
    ]


# --- evaluation ---------------------------------------------------------------------------------


def eval_key(seed: int, condition: str, episode: int) -> jax.Array:
    """The planner key of one evaluation episode: the same for every model."""
    key = jax.random.fold_in(jax.random.key(seed), EVAL_TAG)
    key = jax.random.fold_in(key, zlib.crc32(condition.encode()) & 0x7FFFFFFF)
    return jax.random.fold_in(key, episode)


def evaluate(
    cfg: TransferConfig,
    run: RunDir,
    kind: str,
    seed: int,
    condition: str,
    agent: MPCAgent,
    state: MPCState,
    env: Any,
    done: set[int],
    bar: Any,
) -> None:
    """Plan the missing evaluation episodes of one (model, seed, condition); log each one.

    Success is the condition's env's own `is_success` (fetch_push2's: block 1 at the goal); the
    variant values of blocks:test are the count 2 and block 2's start position."""
    env = RecordReset(env)
    task = conditions(cfg)[condition].task
    for i in range(cfg.eval_episodes):
        if i in done:
            continue
        reset = episode_seed(EVAL_SEED, i)
        result, _ = episode_lib.drive_episode(
            env,
            planning_act(agent, eval_key(seed, condition, i)),
            state.replace(plan=agent.planner.init()),
            reset_seed=reset,
        )
        line = {
            "model": kind,
            "seed": seed,
            "condition": condition,
            "episode": i,
            "reset_seed": reset,
            "return": result.episode_return,
            "variant": env.info.get("variant", {}),
        }
        if task != cfg.env:  # fetch_push2: block 2's start, drawn from the reset seed
            start = result.transitions.obs[0][fetch.ENTITY_LAYOUTS[task]["object1"].position]
            line["variant"] = {BLOCKS: 2, "block2_start": [float(x) for x in start]}
        if cfg.env in FETCH_TASKS:
            last = result.transitions.next_obs[-1]
            layout = fetch.LAYOUTS[task]
            line["success"] = float(result.final_info["is_success"])
            gap = last[layout.achieved] - last[layout.goal]
            line["final_distance"] = float(np.linalg.norm(gap))
        run.log(line)
        bar.update(1)
        bar.set_postfix(model=kind, seed=seed, cond=condition, ret=f"{result.episode_return:.1f}")


def finished(run: RunDir) -> dict[tuple[str, int, str], set[int]]:
    """{(model, seed, condition): evaluation episodes already in metrics.jsonl}."""
    out: dict[tuple[str, int, str], set[int]] = {}
    for r in run.metrics():
        out.setdefault((r["model"], r["seed"], r["condition"]), set()).add(r["episode"])
    return out


def run_suite(cfg: TransferConfig, run: RunDir, *, resume: bool, progress: bool = True) -> RunDir:
    """Train, evaluate (what is missing), then write the table, the CSVs and the plot."""
    conds = conditions(cfg)
    given = cfg.context == "given"
    width = context_width(conds[TRAIN]) if given else 0
    if not resume:
        run.save_checkpoint({"state": {"evaluated": np.int32(0)}})  # so --resume finds the run
    copy_reused(cfg, run)
    done = finished(run)
    if cfg.results:  # the oracle's rows its context-hidden twin already has (module docstring)
        for r in twin_oracle_rows(cfg):
            key = (r["model"], r["seed"], r["condition"])
            m = r["model"]
            in_part = m in cfg.model_list and r["seed"] in model_seeds(cfg, m)
            if in_part and r["condition"] in model_conditions(cfg, m) and key not in done:
                done[key] = set(range(cfg.eval_episodes))
    total = sum(len(model_conditions(cfg, k)) * len(model_seeds(cfg, k)) for k in cfg.model_list)
    total *= cfg.eval_episodes
    bar = progress_bar(total, sum(len(v) for v in done.values()), progress, "evaluate", "episode")
    for kind in cfg.model_list:
        oracle = get_model_kind(kind).needs_env
        planner_cfg = dataclasses.replace(cfg.planner, particles=1) if oracle else cfg.planner
        planner = make_planner(planner_cfg, get_spec(cfg.env))
        capacity = cfg.train_episodes * get_spec(cfg.env).episode_steps
        agent = blocks = None
        if not oracle:
            spec = planning_spec(cfg, width)
            model = make_model(kind, cfg.model_config(kind), spec)
            agent = make_mpc_agent(model, make_planner(planner_cfg, spec), spec, capacity)
            if f"{BLOCKS}:test" in model_conditions(cfg, kind):
                blocks = blocks_agent(cfg, kind, planner_cfg)
        for seed in model_seeds(cfg, kind):
            todo = [
                c
                for c in model_conditions(cfg, kind)
                if len(done.get((kind, seed, c), ())) < cfg.eval_episodes
            ]
            if not todo:
                continue
            if kind in cfg.trained_runs:
                state = reuse_model(cfg, run, kind, agent, seed)
            elif not oracle:
                state = train_model(cfg, run, kind, agent, seed, progress=progress)
            for condition in todo:
                env = make_env(cfg, conds[condition], given and not oracle)
                more = conds[condition].task != cfg.env  # blocks:test: fetch_push2
                if oracle:  # the true simulator of this condition's env
                    spec = planning_spec(cfg, 0)
                    model = make_model(kind, cfg.model_config(kind), spec, env)
                    if more:
                        model = oracle_view(model, conds[condition].task)
                    act = make_mpc_agent(model, planner, spec, capacity)
                    act_state = act.init(jax.random.key(seed))
                elif more:  # the trained model carried over to two blocks, not trained further
                    act, act_state = blocks, blocks_state(cfg, kind, blocks, state)
                else:
                    act, act_state = agent, state
                evaluate(
                    cfg,
                    run,
                    kind,
                    seed,
                    condition,
                    act,
                    act_state,
                    env,
                    done.get((kind, seed, condition), set()),
                    bar,
                )
                done[(kind, seed, condition)] = set(range(cfg.eval_episodes))
                n = sum(len(v) for v in done.values())
                run.save_checkpoint({"state": {"evaluated": np.int32(n)}})
    bar.close()
    report(cfg, run)
    return run


# --- the table ----------------------------------------------------------------------------------


def metric_name(env: str) -> str:
    return "success" if env in FETCH_TASKS else "return"


def variant_text(cfg: TransferConfig, variant: Variant) -> str:
    """A condition's variant for the rows, naming its task if it is not `cfg.env`'s."""
    return str(variant) if variant.task == cfg.env else f"{variant.task}: {variant}"


def per_seed_rows(
    cfg: TransferConfig, records: list[dict], known: dict[tuple[str, int], str] | None = None
) -> list[dict]:
    """One row per (model, seed, condition): the mean of the metric over its episodes, and where
    the model was trained (`trained_on`; `known` = `origins(cfg, run)` for reused models). A model
    that cannot take blocks:test gets a row there too, with no number, 0 episodes and the reason
    in `note` (`CANNOT`; `note` is "" in every other row)."""
    key = metric_name(cfg.env)
    groups: dict[tuple[str, int, str], list[float]] = {}
    for r in records:
        groups.setdefault((r["model"], r["seed"], r["condition"]), []).append(float(r[key]))
    rows = []
    for kind in cfg.model_list:
        for seed in model_seeds(cfg, kind):
            for condition, variant in selected_conditions(cfg).items():
                values = groups.get((kind, seed, condition))
                note = cannot_take_blocks(cfg, kind) if condition == f"{BLOCKS}:test" else ""
                if values or note:
                    rows.append(
                        {
                            "env": cfg.env,
                            "context": cfg.context,
                            "model": kind,
                            "seed": seed,
                            "condition": condition,
                            "variant": variant_text(cfg, variant),
                            key: float(np.mean(values)) if values else "",
                            "episodes": len(values or ()),
                            "trained_on": trained_on(cfg, kind, seed, known or {}),
                            "note": note,
                        }
                    )
    return rows


def ratio(train: float, test: float, success: bool) -> float:
    """Transfer ratio (module docstring): test / train for success, train / test for costs."""
    if success or train > 0 or test > 0:
        return test / train if train != 0 else float("nan")
    return train / test if test != 0 else float("nan")


def summarize(cfg: TransferConfig, rows: list[dict]) -> list[dict]:
    """Per (model, condition): mean over seeds, bootstrap 95% interval, ratio to train; a
    condition the model cannot take (a per-seed row with a `note`) gets a row with no numbers
    and that note."""
    key = metric_name(cfg.env)
    success = key == "success"
    notes: dict[tuple[str, str], dict[str, str]] = {}  # {(model, condition): {note: trained_on}}
    for r in rows:
        if r.get("note"):
            notes.setdefault((r["model"], r["condition"]), {})[r["note"]] = r.get("trained_on", "")
    rows = [r for r in rows if not r.get("note")]
    out = []
    for kind in cfg.model_list:
        by_cond = {
            c: np.array([r[key] for r in rows if r["model"] == kind and r["condition"] == c])
            for c in conditions(cfg)
        }
        train = float(np.mean(by_cond[TRAIN])) if len(by_cond[TRAIN]) else float("nan")
        for c, x in by_cond.items():
            if (kind, c) in notes:
                blank = dict.fromkeys([key, "ci_low", "ci_high", "ratio"], "")
                note, trained = next(iter(notes[(kind, c)].items()))
                out.append(
                    {"model": kind, "condition": c, **blank, "seeds": 0, "episodes": 0}
                    | {"trained_on": trained, "note": note}
                )
                continue
            if not len(x):
                continue
            lo, hi = bootstrap_ci(x, np.random.default_rng(0))
            out.append(
                {
                    "model": kind,
                    "condition": c,
                    key: float(np.mean(x)),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "seeds": len(x),
                    "episodes": min(
                        r["episodes"]
                        for r in rows
                        if r["model"] == kind and r["condition"] == c and "episodes" in r
                    )
                    if any("episodes" in r for r in rows)
                    else cfg.eval_episodes,
                    "ratio": 1.0 if c == TRAIN else ratio(train, float(np.mean(x)), success),
                    "trained_on": "; ".join(
                        dict.fromkeys(
                            r["trained_on"]
                            for r in rows
                            if r["model"] == kind and r["condition"] == c and "trained_on" in r
                        )
                    ),
                    "note": "",
                }
            )
    return out


def format_table(cfg: TransferConfig, summary: list[dict]) -> str:
    """Markdown: one row per model, one column per condition ("mean [lo, hi] (ratio)")."""
    key = metric_name(cfg.env)
    conds = list(conditions(cfg))
    cell = {(s["model"], s["condition"]): s for s in summary}
    fmt = "{:.2f}" if key == "success" else "{:.1f}"
    counts = sorted({s.get("episodes", cfg.eval_episodes) for s in summary if not s.get("note")})
    episodes = "-".join(str(n) for n in (counts[:1] + counts[-1:] if len(counts) > 1 else counts))
    episodes = episodes or str(cfg.eval_episodes)
    head = ["model"] + conds
    lines = [
        f"{cfg.env}, context {cfg.context}: {key} per condition, mean over {cfg.seeds} seed(s)"
        + (f" ({cfg.oracle_seeds} for the oracle)" if cfg.oracle_seeds else "")
        + f" [bootstrap 95%] (transfer ratio); {episodes} evaluation episodes each",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for kind in cfg.model_list:
        own = " (true sim)" if get_model_kind(kind).needs_env else ""
        cells = [kind + (" (pets.py run)" if kind in cfg.trained_runs else own)]
        for c in conds:
            s = cell.get((kind, c))
            if s is None:
                held = kind in cfg.trained_runs and c.endswith(":held")
                cells.append("not held out" if held else "-")
                continue
            if s.get("note"):
                cells.append(s["note"])
                continue
            text = f"{fmt.format(s[key])} [{fmt.format(s['ci_low'])}, {fmt.format(s['ci_high'])}]"
            if c != TRAIN:
                text += f" ({s['ratio']:.2f})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    for kind in cfg.trained_runs:
        where = (cell.get((kind, TRAIN)) or {}).get("trained_on") or cfg.trained_runs[kind]
        lines.append(
            f"{kind} was not trained by this suite but reused from experiments/pets.py "
            f"({where}): its :held conditions are not held out, so not evaluated."
        )
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def plot(cfg: TransferConfig, run: RunDir, summary: list[dict], name: str = "transfer.png") -> Path:
    """plots/<name>: grouped bars (condition x model) with the seeds' intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = metric_name(cfg.env)
    conds, kinds = list(conditions(cfg)), cfg.model_list
    cell = {(s["model"], s["condition"]): s for s in summary}
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(conds) * len(kinds) / 2), 4.0), dpi=120)
    width = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        xs, ys, err = [], [], [[], []]
        for i, c in enumerate(conds):
            s = cell.get((kind, c))
            x = i + (j - (len(kinds) - 1) / 2) * width
            if s is not None and s.get("note"):  # no bar: say why
                ax.text(x, 0, s["note"].split(":")[0], rotation=90, ha="center", va="bottom",
                        fontsize=7)  # fmt: skip
                continue
            if s is None:
                continue
            xs.append(x)
            ys.append(s[key])
            err[0].append(s[key] - s["ci_low"])
            err[1].append(s["ci_high"] - s[key])
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=kind)
    ax.set_xticks(range(len(conds)), conds, rotation=20, fontsize=8)
    ax.set_ylabel(key)
    ax.set_title(
        f"zero-shot transfer on {cfg.env} (context {cfg.context}), {cfg.seeds} seed(s)",
        fontsize=10,
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = run.plots_dir / name
    run.plots_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def report(cfg: TransferConfig, run: RunDir) -> str:
    """Write table.md, summary.csv, per_seed.csv (and the results CSV) and the plot; print and
    return the table."""
    rows = per_seed_rows(cfg, run.metrics(), origins(cfg, run))
    summary = summarize(cfg, rows)
    table = format_table(cfg, summary)
    (run.path / "table.md").write_text(table + "\n")
    _write_csv(run.path / "per_seed.csv", rows)
    _write_csv(run.path / "summary.csv", summary)
    plot(cfg, run, summary)
    print(table)
    if cfg.results:
        if rows:
            merged = merge_results(cfg, rows)
        else:  # e.g. a context-given oracle part whose rows all came from its twin
            merged = read_results(cfg) if results_path(cfg).is_file() else []
        merged = with_twin_oracle(cfg, merged)
        every, every_cfg = results_table(cfg, merged)
        plot(every_cfg, run, summarize(every_cfg, merged), name="transfer_results.png")
        print(f"\n{results_path(cfg)}, every part so far (plots/transfer_results.png):\n{every}")
    return table


# --- a suite in parts: the results CSV ----------------------------------------------------------

# The fields in which the parts of one suite may differ: which models, seeds and conditions a part
# runs, and where a reused model comes from. Rows of parts that agree on every other field
# (`suite_config`) add up in experiments/results/transfer_<env>_<context>_<factors>.csv, whose
# sidecar .json holds that shared config.
PART_FIELDS = frozenset(
    {"models", "seeds", "oracle_seeds", "first_seed", "only_conditions", "results", "trained"}
)


def results_path(cfg: TransferConfig) -> Path:
    """experiments/results/transfer_<env>_<context>_<factors>.csv (factors joined by "-", a
    range's "=" and "~" as "_": one file per suite, so suites of other factors never collide)."""
    factors = "-".join(f.strip() for f in cfg.factors.split(",") if f.strip())
    return (
        RESULTS / f"transfer_{cfg.env}_{cfg.context}_{re.sub(r'[^A-Za-z0-9.-]', '_', factors)}.csv"
    )


def suite_config(cfg: TransferConfig) -> dict[str, Any]:
    """The flat config every part of a suite shares (all but `PART_FIELDS`)."""
    return {k: v for k, v in to_dict(cfg).items() if k not in PART_FIELDS}


def check_results(cfg: TransferConfig, path: Path | None = None) -> None:
    """ConfigError (one line) when the results CSV at `path` holds another suite's rows: its
    sidecar config differs from this one's `suite_config` (a field added since, at its declared
    default, matches), or it has no sidecar."""
    path = path or results_path(cfg)
    if not path.is_file():
        return
    side = path.with_suffix(".json")
    if not side.is_file():
        raise ConfigError(
            f"{path} has no {side.name} saying which suite its rows are from: move it aside or "
            "run without --results"
        )
    saved = json.loads(side.read_text())
    current = suite_config(cfg)
    declared = {k: v for k, v in declared_defaults(cfg).items() if k not in PART_FIELDS}
    diff, _ = config_differences(saved, current, declared)
    if diff:
        shown = ", ".join(f"{k} {saved.get(k)!r} there, {current.get(k)!r} here" for k in diff[:3])
        more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
        raise ConfigError(
            f"{path} holds the rows of another suite ({shown}{more}): use its flags, move it "
            "aside, or run without --results"
        )


def read_results(cfg: TransferConfig, path: Path | None = None) -> list[dict]:
    """The rows of the results CSV, typed as `per_seed_rows` makes them."""
    key = metric_name(cfg.env)
    with open(path or results_path(cfg), newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["seed"], r["episodes"] = int(r["seed"]), int(r["episodes"])
        r[key] = float(r[key]) if r[key] != "" else ""
    return rows


def _row_order(cfg: TransferConfig, rows: list[dict]) -> list[dict]:
    """Rows in one order whichever part wrote last: learned models by name, then the true
    simulator; seeds ascending; conditions in the table's order."""
    conds = list(conditions(cfg))

    def key(r: dict) -> tuple:
        oracle = get_model_kind(r["model"]).needs_env
        return (oracle, r["model"], r["seed"], conds.index(r["condition"]))

    return sorted(rows, key=key)


def merge_results(cfg: TransferConfig, rows: list[dict], path: Path | None = None) -> list[dict]:
    """Add this part's per-seed rows to the results CSV (a row of the same model, seed and
    condition is replaced, every other kept), write its sidecar config if it has none (the
    first part's stays), return all rows."""
    import fcntl

    path = path or results_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    # parts that finish at once on one machine: one read-modify-write at a time
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        check_results(cfg, path)
        old = read_results(cfg, path) if path.is_file() else []
        mine = {(r["model"], r["seed"], r["condition"]) for r in rows}
        merged = _row_order(
            cfg, [r for r in old if (r["model"], r["seed"], r["condition"]) not in mine] + rows
        )
        _write_csv(path, merged)
        side = path.with_suffix(".json")
        if not side.is_file():  # the first part's; later ones matched it (check_results) and
            tmp = side.with_suffix(".json.tmp")  # leave it as it is, so a part run by older
            tmp.write_text(json.dumps(suite_config(cfg), indent=1, sort_keys=True) + "\n")
            tmp.replace(side)  # code, without a field added since, still matches it
    return merged


def twin_oracle_rows(cfg: TransferConfig) -> list[dict]:
    """For a context-given suite: the true simulator's complete per-seed rows in its
    context-hidden twin's results CSV (module docstring), as this suite's rows; [] for a hidden
    suite, or if the twin has no results CSV or that holds another suite's rows."""
    if cfg.context != "given":
        return []
    twin = dataclasses.replace(cfg, context="hidden")
    path = results_path(twin)
    try:
        check_results(twin, path)
    except ConfigError:
        return []
    if not path.is_file():
        return []
    return [
        {**r, "context": cfg.context, "trained_on": f"{r['trained_on']}; from {path.name}"}
        for r in read_results(twin, path)
        if get_model_kind(r["model"]).needs_env and r["episodes"] >= cfg.eval_episodes
    ]


def with_twin_oracle(cfg: TransferConfig, rows: list[dict]) -> list[dict]:
    """`rows` and the `twin_oracle_rows` they lack (same model, seed and condition)."""
    have = {(r["model"], r["seed"], r["condition"]) for r in rows}
    twin = [r for r in twin_oracle_rows(cfg) if (r["model"], r["seed"], r["condition"]) not in have]
    return _row_order(cfg, [*rows, *twin])


def results_table(cfg: TransferConfig, rows: list[dict]) -> tuple[str, TransferConfig]:
    """The table of every part's rows (`format_table` with the models and seed counts the rows
    hold), a line naming each cell with fewer seeds than the rest, and the config it was made
    with."""
    kinds = list(dict.fromkeys(r["model"] for r in _row_order(cfg, rows)))
    oracle = {r["seed"] for r in rows if get_model_kind(r["model"]).needs_env}
    learned = {r["seed"] for r in rows if not get_model_kind(r["model"]).needs_env}
    n = max(len(learned), len(oracle), 1)
    trained = ",".join(f"{k}={v}" for k, v in cfg.trained_runs.items() if k in kinds)
    table_cfg = dataclasses.replace(
        cfg,
        models=",".join(kinds) or cfg.models,
        seeds=n,
        first_seed=0,
        oracle_seeds=len(oracle) if 0 < len(oracle) < n else 0,
        only_conditions="",
        trained=trained,
    )
    summary = summarize(table_cfg, rows)
    table = format_table(table_cfg, summary)
    short = [
        f"{s['model']} {s['condition']} ({s['seeds']})"
        for s in summary
        if not s.get("note") and s["seeds"] < len(model_seeds(table_cfg, s["model"]))
    ]
    if short:
        table += "\nfewer seeds so far (seeds): " + ", ".join(short)
    return table, table_cfg


# --- command line -------------------------------------------------------------------------------


def _layers() -> tuple[Layer, ...]:
    """pets.py's per-task defaults (planner, episodes, reward), renamed to this suite's fields,
    and its flat-ensemble width."""
    out = [Layer({"ensemble.hidden_size": 128})]
    keep = ("planner.", "random_episodes", "reward")
    for layer in PETS_LAYERS:
        if set(layer.when) != {"env"}:
            continue
        values = {("train_episodes" if k == "episodes" else k): v for k, v in layer.values.items()}
        values = {k: v for k, v in values.items() if k == "train_episodes" or k.startswith(keep)}
        out.append(Layer(values, when=layer.when))
    return tuple(out)


COMMAND = CommandLine(
    prog="transfer.py",
    description=__doc__,
    config=TransferConfig,
    out="runs/transfer_{env}_{context}",
    layers=_layers(),
    aliases={
        "planner.horizon": "horizon",
        "planner.population": "population",
        "planner.iterations": "iterations",
        "planner.particles": "particles",
    },
)


def main(argv: list[str] | None = None) -> RunDir:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--factors" in argv and argv[argv.index("--factors") + 1 :][:1] == ["help"]:
        env = COMMAND._selected(argv).get("env") or TransferConfig().env
        from prototypes.envs.variants import describe_variants

        try:
            print(describe_variants(env))
            if env in MORE_OBJECTS:
                print(BLOCKS_HELP.format(task=MORE_OBJECTS[env]))
        except ValueError as e:
            _usage_error(str(e))
        sys.exit(0)
    argv = join_repeated(argv, "--trained")
    if "--results-table" in argv:
        print_results_table([a for a in argv if a != "--results-table"])
        sys.exit(0)
    if "--trained" in argv or any(a.startswith("--trained=") for a in argv):
        check_trained_runs(argv)
    check_results_before_run(argv)
    return COMMAND.run(argv, run_suite, fatal=(TrainingDivergedError,))


def print_results_table(argv: list[str]) -> None:
    """--results-table: the table of every part in the suite's results CSV, nothing run; one line
    and exit status 2 if there is none or it holds another suite."""
    cfg, _ = COMMAND.parse(argv)
    path = results_path(cfg)
    if not path.is_file():
        _usage_error(f"no results of this suite yet: {path} does not exist (run with --results)")
    _refuse_another_suite(cfg)
    print(results_table(cfg, with_twin_oracle(cfg, read_results(cfg)))[0])


def check_results_before_run(argv: list[str]) -> None:
    """With --results, before anything runs: the results CSV holds no other suite's rows (else
    one line and exit status 2, not at the end of hours of work)."""
    cfg, _ = COMMAND.parse(argv)
    if cfg.results:
        _refuse_another_suite(cfg)


def _refuse_another_suite(cfg: TransferConfig) -> None:
    """`check_results`, its ConfigError ending the script in one line, exit status 2."""
    try:
        check_results(cfg)
    except ConfigError as e:
        _usage_error(str(e))


def _usage_error(message: str) -> NoReturn:
    """One line naming what is wrong, on stderr, and exit status 2 (as argparse ends)."""
    import argparse

    argparse.ArgumentParser(prog=COMMAND.prog).error(message)


def join_repeated(argv: list[str], flag: str) -> list[str]:
    """argv with every `flag VALUE` (or `flag=VALUE`) replaced by one, the values joined by
    commas, at the place of the first (so that a repeated --trained adds up)."""
    values, out, first, i = [], [], None, 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif argv[i].startswith(flag + "="):
            value, i = argv[i][len(flag) + 1 :], i + 1
        else:
            out.append(argv[i])
            i += 1
            continue
        values.append(value)
        first = len(out) if first is None else first
    if len(values) < 2:
        return argv
    return out[:first] + [flag, ",".join(values)] + out[first:]


def check_trained_runs(argv: list[str]) -> None:
    """Before anything is written: every pets.py run --trained names is there and matches this
    suite (`pets_run`), else one line and exit status 2. A --resume whose copy of that run is
    complete skips the check (the suite never reads the pets run again)."""
    cfg, ns = COMMAND.parse(argv)
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    out = Path(ns.out or COMMAND.out.format(**fields))
    for kind in cfg.trained_runs:
        for seed in suite_seeds(cfg):
            copy = out / REUSED / f"{kind}_seed{seed}"
            if ns.resume and (copy / ORIGIN).is_file() and has_checkpoint(copy, complete=True):
                continue
            try:
                pets_run(cfg, kind, seed)
            except ConfigError as e:
                _usage_error(str(e))


if __name__ == "__main__":
    main()
