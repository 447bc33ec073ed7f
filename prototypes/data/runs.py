"""Run directories: config.json, append-only metrics.jsonl, atomic checkpoints, learning curves.

Layout of a run directory::

    <out>/config.json        the experiment config, git revision, package versions, command line
    <out>/metrics.jsonl      one JSON object per line, appended and flushed as it happens
    <out>/perf.jsonl         wall-clock timings (apart: metrics.jsonl is deterministic per seed)
    <out>/checkpoints/latest.pkl   the newest checkpoint (written to a temp file, then renamed)
    <out>/plots/*.png        figures drawn from metrics.jsonl

This is the one module of `prototypes/` that does file I/O, so that every experiment writes the
same layout and `--resume` works the same way everywhere. The command line around it (flags,
progress bar, exit codes) is `experiments/cli.py`, which only the experiment scripts import.
`episode_seed` gives the per-episode env reset seeds that let a resumed run replay the same
episodes without saving any env RNG.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = [
    "CheckpointError",
    "RunDir",
    "open_run",
    "git_revision",
    "package_versions",
    "episode_seed",
]

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "mujoco", "gymnasium", "pgmpy", "mctx")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not belong to this run."""


def git_revision(path: Path | str = ".") -> str:
    """The git commit of the code at `path` (with '-dirty' if uncommitted changes), or 'unknown'."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the named distributions ('missing' for absent ones)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class RunDir:
    """Handle on one run directory. Create it with `open_run`."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoints" / "latest.pkl"

    @property
    def perf_path(self) -> Path:
        return self.path / "perf.jsonl"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    def config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    # --- metrics -------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line, flushed and synced before returning."""
        line = json.dumps(_jsonable(record), sort_keys=True)
        with open(self.metrics_path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def log_perf(self, record: dict[str, Any]) -> None:
        """Append one wall-clock record to perf.jsonl (not part of the deterministic metrics)."""
        with open(self.perf_path, "a") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        """All records so far (a torn last line from a crash is skipped)."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_metrics(self, keep: int) -> None:
        """Keep the first `keep` records (on resume: drop records newer than the checkpoint)."""
        records = self.metrics()[:keep]
        payload = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        _atomic_write_bytes(self.metrics_path, payload.encode())

    # --- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, state: Any) -> None:
        """Write `state` (any pytree of arrays and Python scalars) atomically."""
        _atomic_write_bytes(self.checkpoint_path, pickle.dumps(jax.device_get(state), protocol=5))

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def load_checkpoint(self) -> Any:
        """The newest checkpoint, or a `CheckpointError` saying what is wrong with it."""
        path = self.checkpoint_path
        if not path.exists():
            raise CheckpointError(
                f"no checkpoint at {path}: nothing to resume (run without --resume)"
            )
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {path} is corrupt ({type(e).__name__}); delete it to start over"
            ) from None

    def load_state(self, like: Any) -> Any:
        """The pytree saved as `save_checkpoint({"state": state})`, as JAX arrays.

        `like` is a freshly initialised state of the same config; a checkpoint whose structure
        differs raises a `CheckpointError` (as do missing or corrupt ones).
        """
        saved = self.load_checkpoint()
        try:
            state = jax.tree.map(jax.numpy.asarray, saved["state"])
            ok = jax.tree.structure(state) == jax.tree.structure(like)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise CheckpointError(f"checkpoint {self.checkpoint_path} does not match this config")
        return state

    # --- plots ---------------------------------------------------------------------------
    def plot_curve(
        self,
        name: str,
        x: Sequence[float],
        ys: dict[str, Sequence[float]],
        *,
        xlabel: str,
        ylabel: str,
        title: str,
        hlines: dict[str, float] | None = None,
    ) -> Path:
        """Draw one or more curves against x into plots/<name>.png and return its path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
        for label, y in ys.items():
            ax.plot(x, y, label=label, marker="o" if len(x) <= 30 else None, markersize=3)
        for label, value in (hlines or {}).items():
            ax.axhline(value, linestyle="--", linewidth=1, color="gray")
            ax.annotate(
                label,
                (ax.get_xlim()[0], value),
                fontsize=7,
                color="gray",
                xytext=(2, 2),
                textcoords="offset points",
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        out = self.plots_dir / f"{name}.png"
        fig.savefig(out)
        plt.close(fig)
        return out


def episode_seed(seed: int, episode: int) -> int:
    """A distinct, reproducible env reset seed per (run seed, episode): resume needs no env RNG."""
    return (seed * 1_000_003 + episode) % (2**31 - 1)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, jax.Array)):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    return x


def open_run(
    out: Path | str, config: dict[str, Any], *, resume: bool, argv: Sequence[str] = ()
) -> RunDir:
    """Create a new run directory, or reopen one for `--resume`.

    A new run refuses a directory that already holds a run (so nothing is overwritten). A resumed
    run requires the directory, its config and a checkpoint, and the config to match, apart from
    bookkeeping fields (git revision, versions, command line).

    Raises:
        FileExistsError: a new run was asked for in a directory that has one.
        CheckpointError: `resume` with no run, no checkpoint, or a different config.
    """
    run = RunDir(Path(out))
    if resume:
        if not run.config_path.exists():
            raise CheckpointError(f"no run to resume at {run.path} (config.json missing)")
        saved = run.config().get("config")
        if saved != _jsonable(config):
            diff = sorted(
                k
                for k in set(saved or {}) | set(config)
                if (saved or {}).get(k) != _jsonable(config).get(k)
            )
            raise CheckpointError(
                f"--resume with a different config than {run.config_path} "
                f"(differs in: {', '.join(diff)}); use the same flags"
            )
        if not run.has_checkpoint():
            raise CheckpointError(
                f"no checkpoint at {run.checkpoint_path}: nothing to resume (run without --resume)"
            )
        return run
    if run.config_path.exists() or run.metrics_path.exists():
        raise FileExistsError(
            f"{run.path} already holds a run: pass --resume to continue it, or choose another --out"
        )
    run.path.mkdir(parents=True, exist_ok=True)
    meta = {
        "config": _jsonable(config),
        "git_revision": git_revision(Path(__file__).resolve().parent),
        "packages": package_versions(),
        "argv": list(argv),
    }
    _atomic_write_bytes(
        run.config_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    )
    return run
