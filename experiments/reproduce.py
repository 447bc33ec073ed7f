"""Reproduce a published result: run (or read, if they exist) its runs; print ours beside theirs.

    python experiments/reproduce.py pets-reacher              # 5 seeds x 50 episodes of PETS
    python experiments/reproduce.py pets-pusher --jobs 2      # 5 seeds x 100 episodes
    python experiments/reproduce.py dyna-maze                 # Sutton & Barto Example 8.1
    python experiments/reproduce.py pets-reacher --gather-only   # only read what has run
    python experiments/reproduce.py pets-reacher --backend ray --address auto

Each reproduction is a sweep (experiments/sweep.py) over its seeds with the experiment's default
(paper-like) flags, in `<out>/<name>/` (default out: runs/reproduce): finished runs are read, not
rerun, and unfinished ones continue with --resume. Flags after `--` go to every run (for a quick
look: `reproduce.py dyna-maze -- --runs 3`; the numbers are then not the reproduction's).

The reference figures (DESIGN.md section 3) are printed next to ours:
- pets-reacher / pets-pusher: our return (per seed the mean of the last 10 episodes; across seeds
  the mean, or the interquartile mean from 4 seeds on, with a bootstrap 95% interval) and best
  episode, against CEM on the true simulator, model-free results at ~1M steps, the PETS paper
  (pusher), and zero and random actions. The plot is the sweep's, with the references drawn in.
- dyna-maze: episodes until the mean steps per episode (over the runs) first reaches
  near-optimal (<= 1.25 x the 14-step optimum), per planning steps n, against the book's "about
  25, 5 and 3 episodes" for n = 0, 5, 50; the figure is dyna_maze.py's Figure 8.2.
- transfer-fetch-push: not a sweep but experiments/transfer.py suites (which train and evaluate
  their seeds themselves) on FetchPush with the flat ensemble, the structured model and the
  oracle (seed 0 only), 100 training episodes per model and seed: the shifts (goal, start,
  distractors, and blocks: one block -> two, zero-shot) with context hidden, and mass and friction
  with context hidden and given. Each runs in `<out>/transfer-fetch-push/<factors>_<context>/`
  (continued with --resume) with --results, so its rows go to
  experiments/results/transfer_fetch_push_<context>_<factors>.csv, where parts of the same suite
  run elsewhere (transfer.py --first-seed / --only-conditions) add up; the report reads those
  CSVs (--gather-only: only them). It prints each suite's table and the claims it tests: Schema
  Networks' zero-shot play on changed Breakout layouts (Kansky et al. 2017) against our models'
  transfer ratio on goal shift, start shift and distractors; SG2018's zero-shot generalisation to
  unseen topologies (graph networks, Sanchez-Gonzalez et al. 2018) against the ratio on two
  blocks (blocks:test; the flat ensemble cannot take a second block); and whether given context
  closes the mass and friction gap (CARL). The plots are transfer.py's (plots/transfer.png and
  plots/transfer_results.png of each run).

    python experiments/reproduce.py transfer-fetch-push                # 3 seeds, 50 episodes
    python experiments/reproduce.py transfer-fetch-push --gather-only  # the tables so far
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _load_sweep():
    """experiments/ is not a package: load sweep.py beside this file by path."""
    if "sweep_script" in sys.modules:
        return sys.modules["sweep_script"]
    spec = importlib.util.spec_from_file_location("sweep_script", HERE / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_script"] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Reference:
    label: str
    value: float  # drawn as a line on the plot
    text: str  # as printed ("-4.2 +- 1.0", "-3.6 to -2.6")
    source: str


@dataclass(frozen=True)
class Reproduction:
    script: str  # relative to the repository root
    args: tuple[str, ...]
    seeds: tuple[int, ...]
    what: str
    references: tuple[Reference, ...]
    last: int = 10  # a run's final value: mean of its last `last` episode returns


_DESIGN = "DESIGN.md section 3"
REPRODUCTIONS: dict[str, Reproduction] = {
    "pets-reacher": Reproduction(
        script="experiments/pets.py",
        args=("--env", "reacher", "--no-progress"),
        seeds=(0, 1, 2, 3, 4),
        what="PETS (5-member ensemble, CEM) on Reacher-v5, 50 episodes of 50 steps",
        references=(
            Reference("model-free SAC/TD3 ~1M steps", -3.1, "-3.6 to -2.6",
                      "gymnasium benchmarks, " + _DESIGN),
            Reference("CEM on the true simulator", -4.2, "-4.2 +- 1.0",
                      "measured here, seeds 0-4, " + _DESIGN),
            Reference("zero actions", -11.5, "-11.5", _DESIGN),
            Reference("random actions", -43.0, "-43", _DESIGN),
        ),
    ),
    "pets-pusher": Reproduction(
        script="experiments/pets.py",
        args=("--env", "pusher", "--no-progress"),
        seeds=(0, 1, 2, 3, 4),
        what="PETS (5-member ensemble, CEM) on Pusher-v5, 100 episodes of 100 steps",
        references=(
            Reference("model-free TD3 ~1M steps", -29.0, "-29", _DESIGN),
            Reference("CEM on the true simulator", -33.0, "-33 +- 10",
                      "measured here, seeds 0-4, " + _DESIGN),
            Reference("zero actions", -56.0, "-56", _DESIGN),
            Reference("PETS paper, max return", -73.5, "-80 to -67 (2.7k-15k steps)",
                      "Chua et al. 2018, their 7-DOF pusher (not Pusher-v5)"),
            Reference("random actions", -147.0, "-147", _DESIGN),
        ),
    ),
    "dyna-maze": Reproduction(
        script="experiments/dyna_maze.py",
        args=("--maze", "dyna", "--no-progress"),
        seeds=(0,),
        what="Dyna-Q on the Dyna maze (S&B Example 8.1, Fig. 8.2), 30 runs x 50 episodes",
        references=(
            Reference("n=0", 25, "about 25 episodes", "Sutton & Barto 2018, Example 8.1"),
            Reference("n=5", 5, "about 5 episodes", "Sutton & Barto 2018, Example 8.1"),
            Reference("n=50", 3, "about 3 episodes", "Sutton & Barto 2018, Example 8.1"),
        ),
        last=1,
    ),
}


@dataclass(frozen=True)
class TransferSuite:
    """One experiments/transfer.py suite of a reproduction: its flags (without --context, --seeds,
    --out), run once per context."""

    args: tuple[str, ...]
    contexts: tuple[str, ...]

    def argv(self, context: str) -> list[str]:
        return [*self.args, "--context", context]

    def slug(self, context: str) -> str:
        """The run directory's name: the suite's factors and the context."""
        factors = self.args[self.args.index("--factors") + 1]
        return f"{factors.replace(',', '-')}_{context}"


@dataclass(frozen=True)
class TransferReproduction:
    """transfer.py suites (each writing its rows to experiments/results/ with --results) and the
    claims they test."""

    suites: tuple[TransferSuite, ...]
    seeds: tuple[int, ...]
    what: str
    shifts: tuple[str, ...]  # conditions whose ratio tests the zero-shot claim
    context_gap: tuple[str, ...]  # conditions where given context should close the gap
    claims: tuple[Reference, ...]
    topology: str = ""  # the condition that tests the graph-network claim (more objects)


# FetchPush suites: 100 training episodes per model and seed (the structured model solves 36-43
# of each 50 by then; pets.py's 500 would cost ~6 CPU-hours per model and seed here), the oracle
# with seed 0 only (its seeds differ in planner noise alone). The shifts keep the physics nominal
# in training; mass and friction are a suite of their own, hidden and given.
# The structured model at its defaults before 2026-12-05 (plain NLL, no rollout fine-tuning, no
# table top), the config the committed suites' rows were run with.
_FETCH_PUSH = ("--env", "fetch_push", "--models", "ensemble,structured,oracle",
               "--train-episodes", "100", "--oracle-seeds", "1", "--no-progress",
               "--structured.nll-beta", "0", "--structured.rollout-horizon", "0",
               "--no-structured.surface-features")
TRANSFERS: dict[str, TransferReproduction] = {
    "transfer-fetch-push": TransferReproduction(
        suites=(
            TransferSuite((*_FETCH_PUSH, "--factors", "goal,start,distractors,blocks"),
                          ("hidden",)),
            TransferSuite((*_FETCH_PUSH, "--factors", "mass,friction"), ("hidden", "given")),
        ),
        seeds=(0, 1, 2),
        what="zero-shot transfer on FetchPush-v4: train on range A, plan on held-out A and on B",
        shifts=("goal:test", "start:test", "distractors:test"),
        context_gap=("mass:test", "friction:test"),
        topology="blocks:test",
        claims=(
            Reference("Schema Networks: zero-shot on changed layouts", 0.8,
                      "kept playing changed Breakout layouts zero-shot (offset paddle, middle "
                      "wall, random target, juggling) where the A3C and Progressive Networks "
                      "baselines did not",
                      "Kansky et al. 2017"),
            Reference("graph networks: zero-shot on unseen topologies", 0.8,
                      "a GN model trained on some body topologies predicted and controlled "
                      "held-out ones (unseen numbers of links) zero-shot",
                      "Sanchez-Gonzalez et al. 2018"),
        ),
    ),
}
OPTIMAL_STEPS = 14
NEAR_OPTIMAL = 1.25  # x the optimum: "(epsilon-)optimal" in the book's words


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def pets_report(rep: Reproduction, result: Any, extra: Sequence[str]) -> str:
    from prototypes.data.stats import summarize

    sweep = _load_sweep()
    finals = [r["final"] for r in result.rows if r["final"] != ""]
    best = []
    for s in result.specs:
        _, y = sweep.curve(sweep._read_metrics(s.out / "metrics.jsonl"), "env_steps", "return")
        if len(y):
            best.append(float(np.max(y)))
    steps = [r["last_x"] for r in result.rows if r["last_x"] != ""]
    lines = [f"{rep.what}" + (f" (extra flags: {' '.join(extra)})" if extra else "")]
    if not finals:
        return "\n".join(lines + ["no finished episodes yet"])
    rng = np.random.default_rng(0)
    f, b = summarize(finals, rng), summarize(best, rng)
    rows = [["", "return", "source"]]
    rows.append([f"ours: last-{rep.last} mean ({f.statistic} of {f.runs} seeds)",
                 f"{f.center:.1f} [{f.low:.1f}, {f.high:.1f}]",
                 f"{min(steps):.0f}-{max(steps):.0f} env steps per seed"])
    rows.append([f"ours: best episode ({b.statistic} of {b.runs} seeds)",
                 f"{b.center:.1f} [{b.low:.1f}, {b.high:.1f}]", "95% bootstrap CI"])
    rows += [[ref.label, ref.text, ref.source] for ref in rep.references]
    return "\n".join(lines + [_table(rows)])


def episodes_to_near_optimal(mean_steps: np.ndarray) -> int | None:
    """First episode (1-based) whose mean steps is <= NEAR_OPTIMAL x the optimum, or None."""
    hits = np.flatnonzero(mean_steps <= NEAR_OPTIMAL * OPTIMAL_STEPS)
    return int(hits[0]) + 1 if len(hits) else None


def dyna_report(rep: Reproduction, result: Any, extra: Sequence[str]) -> str:
    sweep = _load_sweep()
    records = [r for s in result.specs for r in sweep._read_metrics(s.out / "metrics.jsonl")]
    lines = [f"{rep.what}" + (f" (extra flags: {' '.join(extra)})" if extra else "")]
    rows = [["planning steps", "ours: episodes to near-optimal", "book", "ours: runs",
             "ours: steps in episode 2 / last"]]
    by_n: dict[int, list[list[int]]] = {}
    for r in records:
        n, lengths = r.get("planning_steps"), r.get("steps_per_episode")
        if isinstance(n, int) and isinstance(lengths, list):  # other lines are not ours
            by_n.setdefault(n, []).append(lengths)
    refs = {ref.label: ref for ref in rep.references}
    for n in sorted(by_n):
        mean = np.mean(np.array(by_n[n], dtype=float), axis=0)
        first = episodes_to_near_optimal(mean)
        ref = refs.get(f"n={n}")
        rows.append([f"n={n}", "never" if first is None else str(first),
                     ref.text if ref else "-", str(len(by_n[n])),
                     f"{mean[min(1, len(mean) - 1)]:.1f} / {mean[-1]:.1f}"])
    if not by_n:
        return "\n".join(lines + ["no finished runs yet"])
    lines.append(_table(rows))
    lines.append(f"near-optimal: mean steps per episode <= {NEAR_OPTIMAL} x {OPTIMAL_STEPS}; "
                 "book: Sutton & Barto 2018, Example 8.1")
    for s in result.specs:
        fig = s.out / "plots" / "fig8_2_steps_per_episode.png"
        if fig.exists():
            lines.append(f"figure: {fig}")
    return "\n".join(lines)


def _load_transfer():
    """experiments/transfer.py, loaded by path like sweep.py."""
    if "transfer_script" in sys.modules:
        return sys.modules["transfer_script"]
    spec = importlib.util.spec_from_file_location("transfer_script", HERE / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["transfer_script"] = module
    spec.loader.exec_module(module)
    return module


def _suite_cfg(transfer: Any, suite: TransferSuite, context: str, seeds: int,
               extra: Sequence[str]) -> Any:
    return transfer.COMMAND.parse([*suite.argv(context), "--seeds", str(seeds), *extra])[0]


def missing_rows(transfer: Any, cfg: Any, rows: list[dict]) -> int:
    """How many (model, seed, condition) rows of the whole suite `cfg` the results lack (a row
    counts when all its evaluation episodes ran, or it says the model cannot take the condition)."""
    have = {(r["model"], r["seed"], r["condition"]) for r in rows
            if r["note"] or r["episodes"] >= cfg.eval_episodes}
    want = {(kind, seed, c) for kind in cfg.model_list for seed in transfer.model_seeds(cfg, kind)
            for c in transfer.model_conditions(cfg, kind)}
    return len(want - have)


def transfer_report(rep: TransferReproduction, extra: Sequence[str]) -> tuple[str, list[str]]:
    """Each suite's table of what its results CSV holds, then the claims beside our transfer
    ratios; and the suites (with context) that are not complete yet."""
    transfer = _load_transfer()
    lines = [rep.what + (f" (extra flags: {' '.join(extra)})" if extra else "")]
    ratios: dict[tuple[str, str, str], float] = {}  # (context, model, condition) -> ratio
    models: list[str] = []
    unfinished = []
    for suite in rep.suites:
        for context in suite.contexts:
            cfg = _suite_cfg(transfer, suite, context, len(rep.seeds), extra)
            path = transfer.results_path(cfg)
            models = list(dict.fromkeys([*models, *cfg.model_list]))
            if not path.is_file():
                lines.append(f"{suite.slug(context)}: no results yet ({path})")
                unfinished.append(suite.slug(context))
                continue
            try:
                transfer.check_results(cfg, path)
            except transfer.ConfigError as e:
                lines.append(f"{suite.slug(context)}: {e}")
                unfinished.append(suite.slug(context))
                continue
            rows = transfer.with_twin_oracle(cfg, transfer.read_results(cfg, path))
            table, table_cfg = transfer.results_table(cfg, rows)
            lines += [f"{path.name}:", table]
            for s in transfer.summarize(table_cfg, rows):  # a note instead of a ratio: cannot
                ratios[(context, s["model"], s["condition"])] = s.get("note") or s["ratio"]
            if missing_rows(transfer, cfg, rows):
                unfinished.append(suite.slug(context))

    def text(x: float | str) -> str:
        return x if isinstance(x, str) else f"{x:.2f}"

    def cell(context: str, condition: str) -> str:
        got = [f"{m} {text(ratios[(context, m, condition)])}" for m in models
               if (context, m, condition) in ratios]
        return ", ".join(got) or "not measured yet"

    def topology() -> str:
        measured = [m for m in models
                    if not isinstance(ratios.get(("hidden", m, rep.topology), ""), str)]
        if measured:
            return cell("hidden", rep.topology)
        cannot = [f"{m} {ratios[('hidden', m, rep.topology)]}" for m in models
                  if ratios.get(("hidden", m, rep.topology))]
        return ("not measured: two blocks have no finished episodes yet"
                + (f" ({', '.join(cannot)})" if cannot else ""))

    rows = [["claim", "published", "ours (transfer ratio, context hidden)"]]
    schema, graphs = rep.claims
    for condition in rep.shifts:
        rows.append([f"{schema.label} ({condition})", schema.source, cell("hidden", condition)])
    rows.append([graphs.label + f" (two blocks, {rep.topology})", graphs.source, topology()])
    for condition in rep.context_gap:
        rows.append([f"context closes the gap ({condition})", "CARL, Benjamins et al. 2023",
                     f"hidden: {cell('hidden', condition)}; given: {cell('given', condition)}"])
    lines.append(_table(rows))
    lines.append(f"{schema.source}: {schema.text}")
    lines.append(f"{graphs.source}: {graphs.text}")
    lines.append("must hold (issue 12): structured ratio >= 0.8 on each shift, ensemble beside it;"
                 " ratio = test / train success (1: nothing lost); on two blocks the structured"
                 " model plans zero-shot and its success is reported (the table's blocks:test)")
    return "\n".join(lines), unfinished


def transfer_main(ns: argparse.Namespace, extra: Sequence[str],
                  parser: argparse.ArgumentParser) -> int:
    """Run (or continue, or only read) each suite and context with --results, then print the
    report from experiments/results/ (where parts run elsewhere add up too)."""
    from prototypes.data.runs import has_checkpoint

    rep = TRANSFERS[ns.name]
    seeds = tuple(ns.seeds) if ns.seeds else rep.seeds
    if seeds != tuple(range(len(seeds))):
        parser.error(f"--seeds for {ns.name} must be 0 1 .. n-1 (transfer.py trains seeds 0..n-1),"
                     f" got {list(seeds)}")
    if ns.backend != "local" or ns.jobs != 1:
        parser.error(f"{ns.name} runs in this process: --jobs 1 and --backend local only")
    rep = dataclasses.replace(rep, seeds=seeds)
    transfer = _load_transfer()
    if not ns.gather_only:
        for suite in rep.suites:
            for context in suite.contexts:
                out = ns.out / ns.name / suite.slug(context)
                argv = [*suite.argv(context), "--seeds", str(len(seeds)), "--results", *extra,
                        "--out", str(out)]
                transfer.main(argv + (["--resume"] if has_checkpoint(out) else []))
    report, unfinished = transfer_report(rep, extra)
    print(report)
    if unfinished:
        print(f"unfinished: {', '.join(unfinished)} (rerun to continue, or run the missing parts:"
              " experiments/transfer.py --help, 'A suite in parts')")
    return 1 if unfinished else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reproduce.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted([*REPRODUCTIONS, *TRANSFERS]),
                   help="which reproduction")
    p.add_argument("--out", type=Path, default=Path("runs") / "reproduce",
                   help="parent directory; runs go to <out>/<name>/ (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="override the reproduction's seeds")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default: 1)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes or a Ray cluster (default: local)")
    p.add_argument("--address", default=None, help="Ray cluster address")
    p.add_argument("--gather-only", action="store_true",
                   help="run nothing; report on the runs that exist")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run or read the reproduction and print the comparison; 0 if every run finished."""
    sweep = _load_sweep()
    own, extra = sweep.split_argv(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(own)
    if ns.name in TRANSFERS:
        return transfer_main(ns, extra, parser)
    rep = REPRODUCTIONS[ns.name]
    seeds = tuple(ns.seeds) if ns.seeds else rep.seeds
    if ns.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {ns.jobs}")
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds repeats a seed: {list(seeds)}")
    hlines = None if ns.name == "dyna-maze" else {f"{r.label} {r.text}": r.value
                                                   for r in rep.references}
    try:
        result = sweep.run_sweep(
            HERE.parent / rep.script, seeds, [], [*rep.args, *extra], ns.out / ns.name,
            jobs=ns.jobs, backend=ns.backend, address=ns.address, last=rep.last,
            execute=not ns.gather_only, hlines=hlines, x_key="env_steps", y_key="return")
    except sweep.SweepError as e:
        parser.error(str(e))
    report = dyna_report if ns.name == "dyna-maze" else pets_report
    print(report(rep, result, extra))
    if result.plot:
        print(f"plot: {result.plot}")
    unfinished = [r["run"] for r in result.rows if r["status"] != "done"]
    if unfinished:
        print(f"unfinished: {', '.join(unfinished)} (rerun to continue them)")
    return 1 if result.failed or unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
