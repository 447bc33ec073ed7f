"""Convert a run's old pickle checkpoint (checkpoints/latest.pkl) to the safe checkpoint format.

    python experiments/convert_checkpoint.py RUN_DIR --trust-pickle

Run directories written before checkpoint format 1 hold a pickle, and unpickling a file runs
whatever code its author put in it. `--resume` therefore refuses such a checkpoint. This command
is the one place that still reads one, and only when told `--trust-pickle`: use it on run
directories you wrote yourself or whose origin you trust; for anyone else's, start the run over.
It writes the same state as a msgpack checkpoint with its manifest (prototypes/data/runs.py),
renames the pickle to checkpoints/latest.pkl.converted, and the run continues with `--resume`.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.cli import fail
from prototypes.data.runs import (
    LEGACY_CHECKPOINT,
    CheckpointError,
    RunDirError,
    RunWriteError,
    open_run,
)

PROG = "convert_checkpoint.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="the run directory holding checkpoints/latest.pkl")
    p.add_argument("--trust-pickle", action="store_true",
                   help="unpickle it: this runs any code the file contains; only for files "
                   "whose origin you trust")
    return p


def main(argv: Sequence[str] | None = None) -> Path:
    """Convert RUN's pickle checkpoint; returns the new checkpoint's path."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(argv)
    legacy = ns.run / LEGACY_CHECKPOINT
    if not legacy.is_file():
        parser.error(f"no pickle checkpoint at {legacy}: nothing to convert")
    if not ns.trust_pickle:
        parser.error(f"{legacy} is a pickle, and unpickling runs any code it contains: pass "
                     "--trust-pickle only if you trust where it came from; otherwise start over")
    try:
        from prototypes.data.runs import RunDir

        config = RunDir(ns.run).config()["config"]
        run = open_run(ns.run, config, resume=True, argv=[PROG, *argv])
    except (CheckpointError, RunDirError) as e:
        parser.error(str(e))
    try:
        if run.checkpoint_path.exists():
            parser.error(f"{run.checkpoint_dir} already holds a checkpoint in the safe format; "
                         "nothing to convert (resume with --resume)")
        print(f"{PROG}: warning: unpickling {legacy}, trusting it as you said (--trust-pickle)",
              file=sys.stderr)
        try:
            with open(legacy, "rb") as f:
                state = pickle.load(f)  # the one deliberate unpickle, behind --trust-pickle
        except Exception as e:  # a corrupt pickle raises almost anything
            parser.error(f"{legacy} could not be unpickled ({type(e).__name__}); start over")
        run.save_checkpoint(state)
        legacy.rename(legacy.with_name(legacy.name + ".converted"))
    except RunWriteError as e:
        fail(PROG, str(e))
    finally:
        run.close()
    print(f"wrote {run.checkpoint_path}; continue the run with --resume")
    return run.checkpoint_path


if __name__ == "__main__":
    main()
