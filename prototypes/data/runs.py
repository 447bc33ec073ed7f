"""Run directories: config.json, append-only metrics.jsonl, safe checkpoints, learning curves.

Layout of a run directory::

    <out>/config.json        the experiment config, git revision, package versions, command line
    <out>/metrics.jsonl      one JSON object per line, appended and flushed as it happens
    <out>/perf.jsonl         wall-clock timings (apart: metrics.jsonl is deterministic per seed)
    <out>/checkpoints/ckpt_<generation>.msgpack   a checkpoint's state (flax.serialization msgpack)
    <out>/checkpoints/ckpt_<generation>.json      its manifest: format, version, generation,
                             byte count and SHA-256 of the .msgpack, SHA-256 of the run's config
    <out>/writer.lock        names the process writing the run (held with flock while it runs)
    <out>/plots/*.png        figures drawn from metrics.jsonl

Nothing in a run directory is ever unpickled or evaluated: checkpoints are msgpack of the state
pytree's arrays and scalars (`flax.serialization.to_state_dict`), restored into the structure of
a freshly initialised state, and the other files are JSON. A run directory can come from anyone.

Checkpoints. A checkpoint is written as a new generation: the .msgpack (temp file, fsync, rename),
then its manifest the same way; the manifest's rename is the commit. Then generations older than
the previous good one are deleted, so a kill at any moment leaves the last complete checkpoint,
and a newest checkpoint that turns out corrupt or unfinished (no manifest, size or checksum
mismatch, undecodable) is skipped with a `RunWarning` and the previous one is used. An old pickle
checkpoint (checkpoints/latest.pkl) is refused with a `CheckpointError` that says how to continue.

One writer. `open_run` takes an exclusive `flock` on writer.lock for the life of the process (or
until `RunDir.close`); a second process is refused with a `RunDirError` naming the first. The
kernel drops the lock when its process dies, so a killed run never blocks its own `--resume`.
A lock is held on a file, not a path: if the directory is moved, deleted or replaced while the
run writes it (someone renames a live run aside and starts another at the same --out), every
metric, timing and checkpoint write first checks that the lock file at the path is still the one
it locked, and stops the run with a `RunWriteError` otherwise, so the two runs' records never mix.

Errors: `RunDirError` (the directory cannot be used: not creatable or writable, in use),
`RunWriteError` (a write failed mid-run, e.g. disk full; what was committed before is intact),
`CheckpointError` (missing, corrupt, foreign or old-format checkpoint). Their messages are one
line. This is the one module of `prototypes/` that does file I/O, so that every experiment writes
the same layout and `--resume` works the same way everywhere. The command line around it (flags,
progress bar, exit codes, how warnings are shown) is `experiments/cli.py`. `episode_seed` gives
the per-episode env reset seeds that let a resumed run replay the same episodes without saving
any env RNG.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = [
    "CheckpointError",
    "RunDirError",
    "RunWriteError",
    "RunWarning",
    "RunDir",
    "open_run",
    "lock_dir",
    "unlock_dir",
    "has_checkpoint",
    "read_metrics",
    "config_sha256",
    "git_revision",
    "package_versions",
    "episode_seed",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "LEGACY_CHECKPOINT",
    "LOCK_FILE",
]

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "mujoco", "gymnasium", "pgmpy", "mctx")
CHECKPOINT_FORMAT = "pmbrl-checkpoint"
CHECKPOINT_VERSION = 1
LEGACY_CHECKPOINT = Path("checkpoints") / "latest.pkl"  # pickles written before format 1
LOCK_FILE = "writer.lock"
CONVERT_COMMAND = "python experiments/convert_checkpoint.py"
_GENERATION = re.compile(r"^ckpt_(\d{6,12})\.(msgpack|json)$")
_MAX_MANIFEST_BYTES = 1 << 16


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, in an old format or does not belong to this run."""


class RunDirError(RuntimeError):
    """The run directory cannot be used: it cannot be created or written, or another process
    is writing it."""


class RunWriteError(RunDirError):
    """A write into the run directory failed mid-run (disk full, read-only, removed), or the
    directory was moved or replaced under the run; every checkpoint committed before it is
    intact."""


class RunWarning(UserWarning):
    """Something about the run directory the user should know, that does not stop the run
    (a corrupt newest checkpoint skipped for the previous one, a filesystem without locks)."""


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


def config_sha256(config: dict[str, Any]) -> str:
    """SHA-256 of a flat config dict's canonical JSON (as stored in config.json)."""
    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write `payload` to a temp file beside `path`, fsync it, rename it over `path`."""
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


def _write_failed(what: Path, e: OSError) -> RunWriteError:
    reason = e.strerror or type(e).__name__
    return RunWriteError(
        f"writing {what} failed ({reason}); the run stopped, its last complete checkpoint is "
        "intact: fix the cause (free disk space, say) and rerun with --resume"
    )


# --- checkpoint encoding ----------------------------------------------------------------------


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _encode(state: Any) -> bytes:
    """msgpack of the state pytree's state dict (typed PRNG keys stored as their key data)."""
    from flax import serialization

    state = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)
    return serialization.msgpack_serialize(serialization.to_state_dict(jax.device_get(state)))


def _decode(payload: bytes) -> Any:
    """The state dict of `_encode`: nested dicts of NumPy arrays and Python scalars. msgpack
    with flax's array extension only: no pickle, no imports, no code from the file."""
    from flax import serialization

    return serialization.msgpack_restore(payload)


def _same_layout(like: Any, saved: Any) -> bool:
    """Whether `saved` (a decoded state dict) has the structure, shapes and dtypes of `like`."""
    if jax.tree.structure(like) != jax.tree.structure(saved):
        return False

    def ok(a: Any, b: Any) -> bool:
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype

    return all(jax.tree.leaves(jax.tree.map(ok, like, saved)))


def _restore(like: Any, saved: Any) -> Any:
    """`saved` (checked with `_same_layout`) as a pytree shaped like `like`, as JAX arrays."""
    from flax import serialization

    keyless = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, like)
    restored = serialization.from_state_dict(keyless, saved)
    return jax.tree.map(
        lambda x, ref: (
            jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref))
            if _is_key(ref)
            else jax.numpy.asarray(x)
        ),
        restored,
        like,
    )


class _Unusable(Exception):
    """A checkpoint generation that cannot be used (the message says why): skip it."""


# --- run directory ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDir:
    """Handle on one run directory. Create it with `open_run`.

    `config_hash` (SHA-256 of the run's config) goes into every checkpoint's manifest, and a
    checkpoint with another hash is refused.
    """

    path: Path
    config_hash: str | None = None
    # generations known good in this process: {"good": newest committed or loaded}
    _known: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def checkpoint_path(self) -> Path:
        """The newest checkpoint's state file (where the first one goes if there is none)."""
        gens = self._generations()
        return self._data_path(gens[0] if gens else 1)

    @property
    def perf_path(self) -> Path:
        return self.path / "perf.jsonl"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    def config(self) -> dict[str, Any]:
        """config.json's contents (a `CheckpointError` if it is not a run's config)."""
        try:
            meta = json.loads(self.config_path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(
                f"{self.config_path} is unreadable ({type(e).__name__}): not a run directory "
                "this code can resume; start over in another --out"
            ) from None
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise CheckpointError(
                f"{self.config_path} is not a run config (no 'config' object); start over in "
                "another --out"
            )
        return meta

    def close(self) -> None:
        """Give up the writer lock (it also goes when the process ends)."""
        unlock_dir(self.path)

    # --- metrics -------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line, flushed and synced before returning.

        Raises:
            RunWriteError: the write failed (disk full, ...).
        """
        line = json.dumps(_jsonable(record), sort_keys=True)
        check_writer(self.path)
        try:
            with open(self.metrics_path, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise _write_failed(self.metrics_path, e) from None

    def log_perf(self, record: dict[str, Any]) -> None:
        """Append one wall-clock record to perf.jsonl (not part of the deterministic metrics)."""
        check_writer(self.path)
        try:
            with open(self.perf_path, "a") as f:
                f.write(json.dumps(_jsonable(record)) + "\n")
        except OSError as e:
            raise _write_failed(self.perf_path, e) from None

    def metrics(self) -> list[dict[str, Any]]:
        """All records so far (a torn last line from a crash, or any line that is not a JSON
        object, is skipped)."""
        return read_metrics(self.metrics_path)

    def truncate_metrics(self, keep: int) -> None:
        """Keep the first `keep` records (on resume: drop records newer than the checkpoint)."""
        records = self.metrics()[:keep]
        payload = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        try:
            _atomic_write_bytes(self.metrics_path, payload.encode())
        except OSError as e:
            raise _write_failed(self.metrics_path, e) from None

    # --- checkpoints ---------------------------------------------------------------------
    def _data_path(self, generation: int) -> Path:
        return self.checkpoint_dir / f"ckpt_{generation:06d}.msgpack"

    def _manifest_path(self, generation: int) -> Path:
        return self.checkpoint_dir / f"ckpt_{generation:06d}.json"

    def _generations(self) -> list[int]:
        """Generations with a state file or a manifest, newest first."""
        try:
            names = os.listdir(self.checkpoint_dir)
        except OSError:
            return []
        found = {int(m.group(1)) for m in map(_GENERATION.match, names) if m}
        return sorted(found, reverse=True)

    def save_checkpoint(self, state: Any) -> None:
        """Write `state` (a pytree of arrays and Python scalars) as a new checkpoint generation:
        state file, then manifest (the commit); then delete generations older than the
        previous good one.

        Raises:
            RunWriteError: a write failed; the checkpoints committed before are intact.
        """
        check_writer(self.path)
        payload = _encode(state)
        gens = self._generations()
        gen = gens[0] + 1 if gens else 1
        manifest = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "generation": gen,
            "state_file": self._data_path(gen).name,
            "bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "config_sha256": self.config_hash,
        }
        try:
            _atomic_write_bytes(self._data_path(gen), payload)
            text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
            _atomic_write_bytes(self._manifest_path(gen), text.encode())
            _fsync_dir(self.checkpoint_dir)
        except OSError as e:
            raise _write_failed(self._data_path(gen), e) from None
        previous = self._known.get("good")
        self._known["good"] = gen
        self._prune(gen, previous)

    def _prune(self, newest: int, previous: int | None) -> None:
        """Delete generations older than `newest` except `previous` (the one before it known
        good; if unknown, the newest older one with a manifest), and stray temp files."""
        older = [g for g in self._generations() if g < newest]
        if previous is None:
            previous = next((g for g in older if self._manifest_path(g).exists()), None)
        for g in older:
            if g != previous:
                for p in (self._manifest_path(g), self._data_path(g)):  # manifest first
                    p.unlink(missing_ok=True)
        for tmp in self.checkpoint_dir.glob(".ckpt_*.tmp"):
            tmp.unlink(missing_ok=True)

    def has_checkpoint(self) -> bool:
        """Whether there is anything to resume from (any generation, or an old pickle)."""
        return has_checkpoint(self.path)

    def _read(self, gen: int) -> Any:
        """Generation `gen`'s state dict, checked against its manifest.

        Raises:
            _Unusable: incomplete or corrupt (fall back to an older generation).
            CheckpointError: a checkpoint of another run or a newer format (stop).
        """
        mpath, dpath = self._manifest_path(gen), self._data_path(gen)
        if not mpath.exists():
            raise _Unusable("no manifest: its write did not finish")
        try:
            if mpath.stat().st_size > _MAX_MANIFEST_BYTES:
                raise _Unusable("manifest too large")
            manifest = json.loads(mpath.read_bytes())
        except (OSError, ValueError) as e:
            raise _Unusable(f"unreadable manifest: {type(e).__name__}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
            raise _Unusable("the manifest is not a pmbrl checkpoint manifest")
        version = manifest.get("version")
        if not isinstance(version, int) or version < 1:
            raise _Unusable(f"bad format version {str(version)[:20]!r}")
        if version > CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint {dpath} has format version {version}, newer than this code reads "
                f"({CHECKPOINT_VERSION}): update pmbrl to resume it"
            )
        saved_hash = manifest.get("config_sha256")
        if self.config_hash and saved_hash and saved_hash != self.config_hash:
            raise CheckpointError(
                f"checkpoint {dpath} was written by a run with another config "
                f"(config hash {str(saved_hash)[:12]}, this run {self.config_hash[:12]}); "
                "start over in another --out"
            )
        try:
            payload = dpath.read_bytes()
        except OSError as e:
            raise _Unusable(f"state file unreadable: {e.strerror or type(e).__name__}") from None
        if len(payload) != manifest.get("bytes"):
            raise _Unusable(
                f"truncated: {len(payload)} bytes, the manifest says {manifest.get('bytes')}"
            )
        if hashlib.sha256(payload).hexdigest() != manifest.get("sha256"):
            raise _Unusable("checksum mismatch")
        try:
            return _decode(payload)
        except Exception as e:  # undecodable msgpack: any error from the decoder
            raise _Unusable(f"undecodable ({type(e).__name__})") from None

    def load_checkpoint(self) -> Any:
        """The newest usable checkpoint's state dict (nested dicts of NumPy arrays and Python
        scalars; lists and tuples come back as dicts keyed "0", "1", ...).

        A newest checkpoint that is unfinished or corrupt is skipped for the previous one, with
        a one-line `RunWarning` saying so.

        Raises:
            CheckpointError: none, none usable, an old pickle, another run's or a newer format.
        """
        gens = self._generations()
        if not gens:
            legacy = self.path / LEGACY_CHECKPOINT
            if legacy.exists():
                raise CheckpointError(
                    f"{legacy} is a pickle checkpoint from an older pmbrl and is not loaded "
                    "(unpickling can run any code): start over in another --out, or, only if "
                    f"you trust its origin, convert it with: {CONVERT_COMMAND} {self.path}"
                )
            raise CheckpointError(
                f"no checkpoint at {self.checkpoint_dir}: nothing to resume (run without --resume)"
            )
        skipped: list[str] = []
        for gen in gens:
            try:
                saved = self._read(gen)
            except _Unusable as e:
                skipped.append(f"{self._data_path(gen).name} ({e})")
                continue
            if skipped:
                warnings.warn(
                    RunWarning(
                        f"checkpoint {'; '.join(skipped)} in {self.checkpoint_dir} is not usable: "
                        f"resuming from the previous one, {self._data_path(gen).name}"
                    ),
                    stacklevel=2,
                )
            self._known["good"] = gen
            return saved
        raise CheckpointError(
            f"checkpoint {self._data_path(gens[0])} is corrupt or incomplete "
            f"({skipped[0].split(' (', 1)[1][:-1]}) and no earlier checkpoint is usable: "
            "start over without --resume in another --out"
        )

    def load_state(self, like: Any) -> Any:
        """The pytree saved as `save_checkpoint({"state": state})`, as JAX arrays.

        `like` is a freshly initialised state of the same config; a checkpoint whose structure,
        shapes or dtypes differ raises a `CheckpointError` (as do missing or corrupt ones).
        """
        from flax import serialization

        saved = self.load_checkpoint()
        keyless = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, like)
        expected = serialization.to_state_dict({"state": jax.device_get(keyless)})
        if not _same_layout(expected, saved):
            raise CheckpointError(f"checkpoint {self.checkpoint_path} does not match this config")
        return _restore(like, saved["state"])

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
        out = self.plots_dir / f"{name}.png"
        try:
            self.plots_dir.mkdir(parents=True, exist_ok=True)
            fig.savefig(out)
        except OSError as e:
            raise _write_failed(out, e) from None
        finally:
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


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The JSON-object lines of a metrics.jsonl (a torn last line or any other line is
    skipped); [] if there is no file. JSON only: nothing in the file is executed."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def has_checkpoint(path: Path | str, *, complete: bool = False) -> bool:
    """Whether run directory `path` holds a checkpoint to resume from: any generation (with
    `complete`, only one whose manifest was committed), or an old pickle (which
    `load_checkpoint` then refuses, saying how to continue)."""
    path = Path(path)
    try:
        names = os.listdir(path / "checkpoints")
    except OSError:
        return False
    kinds = ("json",) if complete else ("json", "msgpack")
    return (path / LEGACY_CHECKPOINT).exists() or any(
        (m := _GENERATION.match(n)) and m.group(2) in kinds for n in names
    )


# --- one writer per directory -----------------------------------------------------------------

_LOCKS: dict[Path, int] = {}  # directory -> fd of its lock file, locked by this process


def _printable(text: str, limit: int) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _lock_owner(lock_path: Path) -> str:
    """Who holds `lock_path`, from what it wrote there (JSON; shown, never run)."""
    try:
        info = json.loads(lock_path.read_bytes()[:_MAX_MANIFEST_BYTES])
        pid = int(info["pid"])
        host = _printable(info.get("host", "?"), 64)
        command = _printable(" ".join(map(str, info.get("argv", []))), 160)
        return f"process {pid} on {host}" + (f" ({command})" if command else "")
    except (OSError, ValueError, TypeError, KeyError):
        return "another process"


def lock_dir(path: Path | str, argv: Sequence[str] = ()) -> None:
    """Become the one writer of directory `path` (which must exist) until `unlock_dir` or the
    end of this process. Taking it again in the same process is a no-op.

    Raises:
        RunDirError: another process holds it (the message names it), or the lock file cannot
            be written.
    """
    path = Path(path)
    key = path.resolve()
    if key in _LOCKS:
        return
    lock_path = path / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunDirError(
            f"cannot write to {path} ({e.strerror or type(e).__name__}): choose a writable --out"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirError(
            f"{path} is in use by {_lock_owner(lock_path)}: wait for it to end, or choose "
            "another --out"
        ) from None
    except OSError as e:  # a filesystem without locks: run, but say so
        warnings.warn(
            RunWarning(f"cannot lock {lock_path} ({e.strerror}): nothing stops a second writer"),
            stacklevel=2,
        )
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "argv": list(argv)[:64]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    except OSError as e:
        os.close(fd)
        raise RunDirError(
            f"cannot write to {path} ({e.strerror or type(e).__name__}): choose a writable --out"
        ) from None
    _LOCKS[key] = fd


def check_writer(path: Path | str) -> None:
    """If this process holds the lock of directory `path`, check that the lock file there is
    still the one it locked (same device and inode); a directory without a lock of this
    process (a test's, a read-only look) passes.

    Raises:
        RunWriteError: the directory was moved, deleted or replaced since it was locked.
    """
    path = Path(path)
    fd = _LOCKS.get(path.resolve())
    if fd is None:
        return
    mine = os.fstat(fd)
    try:
        there = os.stat(path / LOCK_FILE)
    except OSError:
        there = None
    if there is None or (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
        raise RunWriteError(
            f"{path} was moved, deleted or replaced while this run was writing it; stopped so "
            "that two runs' records do not mix (--resume this run where its directory is now)"
        )


def unlock_dir(path: Path | str) -> None:
    """Release this process's lock on `path` (if it holds one). The lock file stays: removing
    it could let two processes lock two different files."""
    fd = _LOCKS.pop(Path(path).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def config_differences(
    saved: Mapping[str, Any], config: Mapping[str, Any], added_defaults: Mapping[str, Any] | None
) -> tuple[list[str], set[str]]:
    """The keys in which flat config `config` differs from a run's `saved` one (sorted), and the
    keys `saved` lacks that match as fields added later at their declared default
    (`added_defaults`, see `open_run`)."""
    current = _jsonable(dict(config))
    declared = _jsonable(dict(added_defaults or {}))
    new_keys = set(current) - set(saved)
    added = {k for k in new_keys if k in declared and declared[k] == current[k]}
    current = {k: v for k, v in current.items() if k not in added}
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k)), added


def open_run(
    out: Path | str,
    config: dict[str, Any],
    *,
    resume: bool,
    argv: Sequence[str] = (),
    added_defaults: Mapping[str, Any] | None = None,
) -> RunDir:
    """Create a new run directory, or reopen one for `--resume`, as its one writer.

    A new run refuses a directory that already holds a run (so nothing is overwritten). A resumed
    run requires the directory, its config and a checkpoint, and the config to match, apart from
    bookkeeping fields (git revision, versions, command line). Either way the directory is locked
    for this process first (`lock_dir`), before anything is written.

    Fields added to the code after the run was saved: a key of `config` that the saved config
    lacks matches when its value is `added_defaults[key]` (the field's declared default, which
    must reproduce the older code's behaviour: `prototypes.config.declared_defaults`). The run
    keeps its saved config and config hash; any other value of such a key is a difference.

    Raises:
        FileExistsError: a new run was asked for in a directory that has one.
        CheckpointError: `resume` with no run, no checkpoint, or a different config.
        RunDirError: `out` cannot be created or written, or another process is writing it.
    """
    path = Path(out)
    run = RunDir(path, config_hash=config_sha256(config))
    if resume:
        if not run.config_path.is_file():
            raise CheckpointError(f"no run to resume at {run.path} (config.json missing)")
        lock_dir(path, argv)
        saved = run.config()["config"]
        diff, added = config_differences(saved, config, added_defaults)
        if diff:
            shown = ", ".join(_printable(k, 60) for k in diff[:10])
            raise CheckpointError(
                f"--resume with a different config than {run.config_path} "
                f"(differs in: {shown}{', ...' if len(diff) > 10 else ''}); use the same flags"
            )
        if not run.has_checkpoint():
            raise CheckpointError(
                f"no checkpoint at {run.checkpoint_dir}: nothing to resume (run without --resume)"
            )
        return RunDir(path, config_hash=config_sha256(saved)) if added else run
    if run.config_path.exists() or run.metrics_path.exists():
        raise FileExistsError(
            f"{run.path} already holds a run: pass --resume to continue it, or choose another --out"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(
            f"cannot create run directory {path} ({e.strerror or type(e).__name__}): choose a "
            "writable --out"
        ) from None
    lock_dir(path, argv)
    if run.config_path.exists() or run.metrics_path.exists():  # created while we were locking
        raise FileExistsError(
            f"{run.path} already holds a run: pass --resume to continue it, or choose another --out"
        )
    meta = {
        "config": _jsonable(config),
        "git_revision": git_revision(Path(__file__).resolve().parent),
        "packages": package_versions(),
        "argv": list(argv),
    }
    try:
        _atomic_write_bytes(
            run.config_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
        )
    except OSError as e:
        raise RunDirError(
            f"cannot write {run.config_path} ({e.strerror or type(e).__name__}): choose a "
            "writable --out"
        ) from None
    return run
