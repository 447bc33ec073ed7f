import dataclasses
import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from prototypes.config import arg, declared_defaults
from prototypes.data import runs as runs_lib
from prototypes.data.runs import (
    CheckpointError,
    RunDirError,
    RunWarning,
    RunWriteError,
    episode_seed,
    open_run,
)

ROOT = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this creates the file `path`: what a crafted pickle would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_new_run_writes_config_with_revision_and_versions(tmp_path):
    run = open_run(tmp_path / "r", {"seed": 3}, resume=False, argv=["--seed", "3"])
    meta = json.loads(run.config_path.read_text())
    assert meta["config"] == {"seed": 3}
    assert meta["argv"] == ["--seed", "3"]
    assert "jax" in meta["packages"] and "git_revision" in meta


def test_refuses_to_overwrite_and_resume_checks(tmp_path):
    open_run(tmp_path / "r", {"seed": 3}, resume=False)
    with pytest.raises(FileExistsError, match="pass --resume"):
        open_run(tmp_path / "r", {"seed": 3}, resume=False)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        open_run(tmp_path / "r", {"seed": 3}, resume=True)
    with pytest.raises(CheckpointError, match="different config"):
        open_run(tmp_path / "r", {"seed": 4}, resume=True)
    with pytest.raises(CheckpointError, match="no run to resume"):
        open_run(tmp_path / "nothing", {"seed": 3}, resume=True)


def test_resume_across_a_field_added_at_its_declared_default(tmp_path):
    old = open_run(tmp_path / "r", {"seed": 3}, resume=False)
    old.save_checkpoint({"step": np.int32(1)})
    old.close()
    # the code has since gained a field "model.beta" declared with default 0.0
    run = open_run(
        tmp_path / "r",
        {"seed": 3, "model.beta": 0.0},
        resume=True,
        added_defaults={"model.beta": 0.0},
    )
    assert run.config_hash == old.config_hash  # the saved config: its checkpoints load
    assert int(run.load_checkpoint()["step"]) == 1
    assert json.loads(run.config_path.read_text())["config"] == {"seed": 3}
    run.close()
    for config, declared in (
        ({"seed": 3, "model.beta": 0.5}, {"model.beta": 0.0}),  # not the old behaviour
        ({"seed": 3, "model.beta": 0.0}, {}),  # no declared default
    ):
        with pytest.raises(CheckpointError, match=r"differs in: model\.beta\)"):
            open_run(tmp_path / "r", config, resume=True, added_defaults=declared)


def test_declared_defaults_are_the_classes_not_the_layers():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        beta: float = 0.0
        sizes: tuple = (1, 2)

    @dataclasses.dataclass(frozen=True)
    class Outer:
        seed: int = 0
        model: Inner = dataclasses.field(default_factory=Inner)
        tags: list = dataclasses.field(default_factory=list)

    cfg = Outer(seed=4, model=Inner(beta=0.5), tags=["a"])
    assert declared_defaults(cfg) == {
        "seed": 0,
        "model.beta": 0.0,
        "model.sizes": (1, 2),
        "tags": [],
    }


def test_a_default_changed_later_keeps_its_absent_value(tmp_path):
    """`arg(..., absent=v)`: a field whose default changed after it was added declares the value
    that configs saved without it meant; a run saved before it resumes only with that value."""

    @dataclasses.dataclass(frozen=True)
    class Model:
        beta: float = arg(0.5, "now on by default", absent=0.0)
        width: int = arg(64, "unchanged")

    declared = declared_defaults(Model())
    assert declared == {"beta": 0.0, "width": 64}
    assert dataclasses.fields(Model)[0].metadata["help"] == "now on by default"
    open_run(tmp_path / "r", {"width": 64}, resume=False).save_checkpoint({"step": 1})
    open_run(tmp_path / "r", {"width": 64, "beta": 0.0}, resume=True, added_defaults=declared)
    with pytest.raises(CheckpointError, match=r"differs in: beta\)"):  # today's default
        open_run(tmp_path / "r", {"width": 64, "beta": 0.5}, resume=True, added_defaults=declared)


def test_metrics_append_and_truncate(tmp_path):
    run = open_run(tmp_path / "r", {}, resume=False)
    for i in range(4):
        run.log({"episode": i, "value": np.float32(i) / 2})
    with open(run.metrics_path, "a") as f:
        f.write('[1, 2]\n"a string"\n{"episode": 4, "val')  # not records, and a torn line
    assert [r["episode"] for r in run.metrics()] == [0, 1, 2, 3]
    run.truncate_metrics(2)
    assert run.metrics() == [{"episode": 0, "value": 0.0}, {"episode": 1, "value": 0.5}]


def test_checkpoint_roundtrip_manifest_and_generations(tmp_path):
    run = open_run(tmp_path / "r", {"seed": 1}, resume=False)
    for step in (5, 6, 7):
        run.save_checkpoint({"a": np.arange(3), "step": step})
    back = run.load_checkpoint()
    np.testing.assert_array_equal(back["a"], [0, 1, 2])
    assert back["step"] == 7
    # the newest and the one before it are kept; no temp files are left
    names = sorted(p.name for p in run.checkpoint_dir.iterdir())
    assert names == [
        "ckpt_000002.json",
        "ckpt_000002.msgpack",
        "ckpt_000003.json",
        "ckpt_000003.msgpack",
    ]
    assert run.checkpoint_path.name == "ckpt_000003.msgpack"
    manifest = json.loads((run.checkpoint_dir / "ckpt_000003.json").read_text())
    payload = run.checkpoint_path.read_bytes()
    assert manifest["format"] == "pmbrl-checkpoint" and manifest["version"] == 1
    assert manifest["generation"] == 3 and manifest["bytes"] == len(payload)
    assert manifest["config_sha256"] == runs_lib.config_sha256({"seed": 1})
    assert payload[:1] != b"\x80"  # msgpack, not a pickle


def _corrupt(path, how):
    data = path.read_bytes()
    if how == "flip":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "no manifest":
        path.with_suffix(".json").unlink()


@pytest.mark.parametrize("how", ["flip", "truncate", "no manifest"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, how):
    run = open_run(tmp_path / "r", {}, resume=False)
    run.save_checkpoint({"step": 1})
    run.save_checkpoint({"step": 2})
    _corrupt(run.checkpoint_dir / "ckpt_000002.msgpack", how)
    with pytest.warns(RunWarning, match="ckpt_000002.msgpack .* resuming from the previous one"):
        assert run.load_checkpoint() == {"step": 1}
    run.save_checkpoint({"step": 3})  # generation 3; the unusable 2 goes, the good 1 stays
    assert sorted(p.name for p in run.checkpoint_dir.glob("*.msgpack")) == [
        "ckpt_000001.msgpack",
        "ckpt_000003.msgpack",
    ]
    assert run.load_checkpoint() == {"step": 3}


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    run = open_run(tmp_path / "r", {}, resume=False)
    run.checkpoint_path.parent.mkdir(parents=True)
    run.checkpoint_path.write_bytes(b"\x80\x05garbage")  # a state file with no manifest
    with pytest.raises(CheckpointError, match="is corrupt or incomplete .*no manifest"):
        run.load_checkpoint()


def test_load_state_checks_structure_shapes_and_dtypes(tmp_path):
    import jax
    import jax.numpy as jnp

    run = open_run(tmp_path / "r", {}, resume=False)
    state = {
        "w": jnp.arange(3.0),
        "step": jnp.int32(2),
        "key": jax.random.key(4),
        "pair": (jnp.zeros(2), jnp.ones(1)),
    }
    run.save_checkpoint({"state": state})
    back = run.load_state(like=state)
    np.testing.assert_array_equal(back["w"], [0.0, 1.0, 2.0])
    assert int(back["step"]) == 2 and isinstance(back["pair"], tuple)
    np.testing.assert_array_equal(
        jax.random.key_data(back["key"]), jax.random.key_data(state["key"])
    )
    for like in ({"w": jnp.zeros(3)}, {**state, "w": jnp.zeros(4)}, {**state, "w": jnp.arange(3)}):
        with pytest.raises(CheckpointError, match="does not match this config"):
            run.load_state(like=like)
    run.save_checkpoint([1, 2])  # not the {"state": ...} layout
    with pytest.raises(CheckpointError, match="does not match this config"):
        run.load_state(like=state)


def test_a_checkpoint_of_another_config_or_a_newer_format_is_refused(tmp_path):
    run = open_run(tmp_path / "r", {"seed": 1}, resume=False)
    run.save_checkpoint({"step": 1})
    manifest_path = run.checkpoint_dir / "ckpt_000001.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "config_sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="written by a run with another config"):
        open_run(tmp_path / "r", {"seed": 1}, resume=True).load_checkpoint()
    manifest_path.write_text(json.dumps({**manifest, "version": 2}))
    with pytest.raises(CheckpointError, match="format version 2, newer than this code reads"):
        run.load_checkpoint()


def test_a_pickle_checkpoint_is_refused_and_never_unpickled(tmp_path):
    """A crafted old-format checkpoint, and crafted files in the new format's places."""
    run = open_run(tmp_path / "r", {}, resume=False)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Payload(marker))
    legacy = run.path / "checkpoints" / "latest.pkl"
    legacy.parent.mkdir()
    legacy.write_bytes(evil)
    resumed = open_run(tmp_path / "r", {}, resume=True)  # there is something to resume
    with pytest.raises(CheckpointError, match="pickle checkpoint from an older pmbrl") as e:
        resumed.load_checkpoint()
    assert "convert_checkpoint.py" in str(e.value) and "\n" not in str(e.value)
    # the same bytes as a state file, with a manifest whose checksum matches them
    data = run.checkpoint_dir / "ckpt_000001.msgpack"
    data.write_bytes(evil)
    import hashlib

    (run.checkpoint_dir / "ckpt_000001.json").write_text(
        json.dumps(
            {
                "format": "pmbrl-checkpoint",
                "version": 1,
                "bytes": len(evil),
                "sha256": hashlib.sha256(evil).hexdigest(),
            }
        )
    )
    with pytest.raises(CheckpointError, match="is corrupt or incomplete"):
        resumed.load_checkpoint()
    run.config_path.write_bytes(evil)  # and as config.json
    with pytest.raises(CheckpointError, match="config.json is unreadable"):
        open_run(tmp_path / "r", {}, resume=True)
    assert not marker.exists()


def test_convert_command_needs_trust_then_converts(tmp_path, capsys):
    from tests.scripts import load_script

    convert = load_script("experiments/convert_checkpoint.py", "convert_checkpoint_script")
    run = open_run(tmp_path / "r", {"seed": 0}, resume=False)
    legacy = run.path / "checkpoints" / "latest.pkl"
    legacy.parent.mkdir()
    legacy.write_bytes(pickle.dumps({"state": {"w": np.arange(2.0)}}))
    with pytest.raises(SystemExit) as exc:
        convert.main([str(run.path)])
    assert exc.value.code == 2 and "pass --trust-pickle" in capsys.readouterr().err
    convert.main([str(run.path), "--trust-pickle"])
    assert "trusting it" in capsys.readouterr().err
    assert not legacy.exists()
    back = open_run(run.path, {"seed": 0}, resume=True).load_state({"w": np.zeros(2)})
    np.testing.assert_array_equal(back["w"], [0.0, 1.0])


def test_a_failed_write_mid_run_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = open_run(tmp_path / "r", {}, resume=False)
    run.save_checkpoint({"step": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs_lib.os, "fsync", full)
    with pytest.raises(RunWriteError, match="No space left on device.*last complete checkpoint"):
        run.save_checkpoint({"step": 2})
    with pytest.raises(RunWriteError, match="metrics.jsonl failed"):
        run.log({"episode": 2})
    monkeypatch.undo()
    assert run.load_checkpoint() == {"step": 1}
    assert not list(run.checkpoint_dir.glob(".*tmp"))


def test_unwritable_out_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="cannot create run directory .*file/run"):
        open_run(tmp_path / "file" / "run", {}, resume=False)


_HOLD = """
import sys, time
from prototypes.data.runs import open_run
open_run(sys.argv[1], {}, resume=sys.argv[2] == "resume", argv=["hold.py", "--x"])
print("locked", flush=True)
time.sleep(60)
"""


def test_one_writer_per_run_directory_and_a_killed_writer_does_not_block(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out), "new"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"in use by process {proc.pid} on .*hold.py --x"):
            open_run(out, {}, resume=True)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the killed writer's lock file is still there, and does not block
    assert (out / "writer.lock").exists()
    with pytest.raises(FileExistsError):  # (a new run is refused only because the run is there)
        open_run(out, {}, resume=False)
    runs_lib.lock_dir(out)
    runs_lib.lock_dir(out)  # this process may take it twice
    runs_lib.unlock_dir(out)


def test_a_run_directory_moved_under_its_writer_stops_the_writer(tmp_path):
    # someone renames a live run aside and starts another run at the same --out: the first
    # run's next write must not land in the second run's files
    out = tmp_path / "r"
    run = open_run(out, {"a": 1}, resume=False)
    try:
        run.log({"episode": 1})
        run.save_checkpoint({"x": np.zeros(2)})
        os.rename(out, tmp_path / "r_aside")
        with pytest.raises(RunWriteError, match=r"moved, deleted or replaced"):
            run.log({"episode": 2})  # nothing at the path any more
        out.mkdir()  # another process's new run at the old path (its own lock file)
        (out / "writer.lock").write_text('{"pid": 1}\n')
        for write in (
            lambda: run.log({"episode": 2}),
            lambda: run.log_perf({"seconds": 1.0}),
            lambda: run.save_checkpoint({"x": np.ones(2)}),
        ):
            with pytest.raises(RunWriteError, match=rf"^{out} was moved"):
                write()
        assert sorted(p.name for p in out.iterdir()) == ["writer.lock"]  # nothing landed
        aside = runs_lib.read_metrics(tmp_path / "r_aside" / "metrics.jsonl")
        assert [r["episode"] for r in aside] == [1]
    finally:
        run.close()


def test_perf_log_and_episode_seeds(tmp_path):
    run = open_run(tmp_path / "r", {}, resume=False)
    run.log_perf({"episode": 1, "seconds": np.float32(0.5)})
    assert json.loads(run.perf_path.read_text()) == {"episode": 1, "seconds": 0.5}
    assert not run.metrics()  # timings stay out of the deterministic metrics
    # seed * 1_000_003 + episode, modulo 2^31 - 1
    assert episode_seed(0, 5) == 5 and episode_seed(2, 1) == 2_000_007
    assert len({episode_seed(s, e) for s in range(3) for e in range(100)}) == 300


def test_warnings_are_one_line(tmp_path, capsys):
    from experiments.cli import one_line_warnings

    with one_line_warnings("x.py"):
        warnings.warn(RunWarning("something to know"), stacklevel=1)
    assert capsys.readouterr().err == "x.py: warning: something to know\n"
