"""The command line every experiment script shares: run-directory flags, progress bar, exit codes.

Only `experiments/` imports this module; the library tier (`prototypes/`) does no argparse,
printing, exiting or wall-clock reads. The run directory itself is `prototypes/data/runs.py`.

- `add_run_arguments`: --out, --resume, --no-progress.
- `apply_task_defaults`: the `--env` named on the command line sets its per-task defaults before
  the real parse, so explicit flags still win.
- `run_experiment`: open (or reopen) the run directory and train; bad input ends in one line.
- `progress_bar`, `Throttle`: what a person watching the run sees, and how often.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prototypes.data.runs import CheckpointError, RunDir, open_run

__all__ = ["Throttle", "progress_bar", "add_run_arguments", "apply_task_defaults", "run_experiment"]


class Throttle:
    """`due()` is True at most once per `seconds` of wall clock, and always with `force=True`.

    For work a person watches but the run does not need every episode, such as redrawing the
    learning curve (~0.3-0.5 s per PNG with matplotlib, which added up to ~6% of a short PETS run
    in `profiling/profile_pets.py`): `if plot_due(force=last_episode): draw()`.
    """

    def __init__(self, seconds: float, clock: Any = time.monotonic) -> None:
        if not seconds >= 0:
            raise ValueError(f"Throttle seconds must be >= 0, got {seconds}")
        self.seconds, self._clock, self._last = seconds, clock, None

    def due(self, force: bool = False) -> bool:
        now = self._clock()
        if force or self._last is None or now - self._last >= self.seconds:
            self._last = now
            return True
        return False


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, initial: int, enabled: bool, desc: str, unit: str = "step") -> Any:
    """A tqdm bar on stderr (update / set_postfix / set_description / close), or a no-op object
    with the same methods if not enabled."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, desc=desc)


def add_run_arguments(
    parser: argparse.ArgumentParser,
    default_out: str,
    resume_help: str = "continue the run in --out from its last checkpoint",
) -> None:
    """Add --out (default shown as `default_out`), --resume and --no-progress to `parser`."""
    parser.add_argument(
        "--out", type=Path, default=None, help=f"run directory (default: {default_out})"
    )
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def apply_task_defaults(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    task_defaults: Mapping[str, Mapping[str, Any]],
    default_env: str,
) -> str:
    """Make the `--env` named in argv (or `default_env`) set its per-task defaults before the
    real parse, so explicit flags still win; returns that env name."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env", default=default_env)
    env = pre.parse_known_args(list(argv))[0].env
    parser.set_defaults(**task_defaults.get(env, {}))
    return env


def run_experiment(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    config: dict,
    ns: argparse.Namespace,
    default_out: Path,
    train: Callable[[RunDir, bool, bool], RunDir],
    fatal: tuple[type[BaseException], ...] = (),
) -> RunDir:
    """Open (or, with ns.resume, reopen) the run directory and call train(run, resume, progress).

    A bad --out or checkpoint ends through `parser.error` (one line, exit status 2); an error in
    `fatal` (a diverged model, say) ends as one line `<prog>: error: ...` with exit status 1.
    """
    try:
        run = open_run(ns.out or default_out, config, resume=ns.resume, argv=list(argv))
        return train(run, ns.resume, not ns.no_progress)
    except (CheckpointError, FileExistsError) as e:
        parser.error(str(e))
    except fatal as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
