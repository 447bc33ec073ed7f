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
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType

from experiments import mcts, pets
from experiments.cli import write_results_row
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
    args = parser.parse_args(argv)
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
    return rows


if __name__ == "__main__":
    main()
