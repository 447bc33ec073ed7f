"""Summarise pets.py and mcts.py run directories, finished or still running, as results rows.

    python experiments/summarize.py /work/runs/fp_struct_s0 /work/runs/fp_struct_s1
    python experiments/summarize.py runs/fp_struct_s* --results experiments/results/NAME.csv

pets.py and mcts.py write a run's row to `--results CSV` when the run finishes. A FetchPush run
takes hours, and a figure reported from it before then should leave the machine the same way:
this prints the same row (`pets.results_row` or `mcts.results_row`: episodes, env steps, last-10
return, success figures, minutes spent acting and fitting) for each run directory, from its
config.json (the argv it was started with, parsed as its script parses it: a config with mcts.*
fields is an mcts.py run's, any other a pets.py run's) and its metrics, plus `status`:
"finished", or "partial N/M" for a run at episode N of M. The run directories are only read (no
lock is taken), so a live run may go on. With `--results` the rows are written into that CSV (a
row of the same run name replaced); for a figure from an unfinished run, name the CSV so that it
says so (e.g. ..._partial.csv), since the finished run's own row will replace the partial one
only in the CSV it names.

With `--plot PNG` the runs' learning curves are drawn into one figure: each run's success rate
in every block of 50 episodes (its `successes_per50`; a last, partial block at its own rate),
coloured by model, so seeds of two models can be compared at a glance, with the task's target
rate (pets.py's `TARGETS`) as a dashed line. `plot_blocks` needs only the rows, so a results CSV
re-plots in ptpython: `plot_blocks(list(csv.DictReader(open(CSV))), Path("out.png"))`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType

from experiments import mcts, pets
from experiments.cli import write_results_row
from experiments.mpc_episodes import LAST
from prototypes.data.runs import RunDir


def summarize(path: Path) -> dict:
    """The results row of the pets.py or mcts.py run directory at `path`, with its `status`.

    Raises:
        ValueError: `path` is not such a run directory with metrics (one line naming it).
    """
    script = _script(path)
    cfg = script.COMMAND.saved_config(path)
    run = RunDir(path)
    done = len(run.metrics())
    if not done:
        raise ValueError(f"{path}: no episodes in metrics.jsonl yet")
    status = "finished" if done >= cfg.episodes else f"partial {done}/{cfg.episodes}"
    return {"run": path.name, "status": status, **script.results_row(cfg, run)}


def _script(path: Path) -> ModuleType:
    """The experiment module (pets or mcts) that made the run directory at `path`."""
    try:
        saved = json.loads((path / "config.json").read_text()).get("config", {})
    except (OSError, ValueError):
        return pets  # saved_config names what is wrong with it
    return mcts if any(k.startswith("mcts.") for k in saved) else pets


def block_curve(row: dict) -> tuple[list[int], list[float]]:
    """The success rate of each block of LAST episodes of a results row, against the block's
    last episode: `successes_per50` "10 50 0" of 120 episodes gives ([50, 100, 120],
    [0.2, 1.0, 0.0]). A row without success figures (not a Fetch run) gives two empty lists."""
    blocks = [int(b) for b in str(row.get(f"successes_per{LAST}", "")).split()]
    ends = [min((i + 1) * LAST, int(row["episodes"])) for i in range(len(blocks))]
    starts = [i * LAST for i in range(len(blocks))]
    return ends, [b / (end - start) for b, start, end in zip(blocks, starts, ends, strict=True)]


def plot_blocks(rows: list[dict], out: Path) -> Path:
    """Draw the `block_curve` of every row into the PNG at `out`: one colour per model, one line
    style per run of it, a partial last block as a hollow marker apart from the line; the target
    rate of the rows' task as a dashed line, if it has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(str(r.get("model", "")) for r in rows))
    styles = ["-", "--", ":", "-."]
    seen: dict[str, int] = {}
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for row in rows:
        model = str(row.get("model", ""))
        nth = seen[model] = seen.get(model, -1) + 1
        x, y = block_curve(row)
        full = int(row["episodes"]) // LAST  # the blocks joined by the line; a partial one is not
        colour = f"C{models.index(model)}"
        ax.plot(x[:full], y[:full], marker="o", markersize=3, color=colour,
                linestyle=styles[nth % len(styles)],
                label=f"{row['run']} ({model}, seed {row.get('seed', '?')})")  # fmt: skip
        ax.plot(x[full:], y[full:], marker="o", markersize=5, linestyle="", color=colour,
                markerfacecolor="none")  # fmt: skip
    envs = {r.get("env") for r in rows}
    target = pets.TARGETS.get(envs.pop()) if len(envs) == 1 else None
    if target is not None:
        ax.axhline(target, linestyle="--", linewidth=1, color="gray", label=f"target {target:.0%}")
    ax.set_xlabel(f"episode (end of each block of {LAST}; hollow: an unfinished block)")
    ax.set_ylabel(f"success rate per {LAST} episodes")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="summarize.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", type=Path, help="pets.py or mcts.py run directories")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        metavar="CSV",
        help="also write the rows into this CSV (a row of the same run name is replaced)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="also draw the runs' success rate per block of 50 episodes into this PNG",
    )
    args = parser.parse_args(argv)
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        parser.error(f"--plot {args.plot}: the figure is a PNG; name a file ending in .png")
    rows = []
    for path in args.runs:
        try:
            rows.append(summarize(path))
        except ValueError as e:
            parser.error(str(e))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row.get(k, "")) for k in keys))
    if args.results is not None:
        for row in rows:
            write_results_row(args.results, row)
        print(f"wrote {len(rows)} rows to {args.results}", file=sys.stderr)
    if args.plot is not None:
        print(f"wrote {plot_blocks(rows, args.plot)}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
