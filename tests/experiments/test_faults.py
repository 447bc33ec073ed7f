"""Real processes, real faults: each experiment is started as a subprocess, killed with SIGKILL
(or failed with a full disk) at chosen moments of a checkpoint write or a metrics append by
tests/experiments/fault_runner.py, resumed each time, and must end with metrics.jsonl
byte-identical to an uninterrupted run's; and a sweep whose process group is killed mid-way
finishes on rerun with the same table as an uninterrupted one.

The processes share a JAX persistent compilation cache, so only the first run of each script
compiles (about 10 s -> 5 s per process here), and the uninterrupted reference run of each
script goes alongside its first faulted run.
"""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.experiments import test_mbpo, test_mcts, test_pets

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "fault_runner.py"
FAKE = Path(__file__).resolve().parent / "fake_experiment.py"
KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _command(script, argv):
    return [sys.executable, str(RUNNER), str(ROOT / script), *argv]


def _run(env, script, argv, fault=None):
    """Run `script argv` in a fresh process, with `fault` armed (fault_runner.py's FAULT)."""
    env = {**env, "FAULT": fault} if fault else {k: v for k, v in env.items() if k != "FAULT"}
    return subprocess.run(_command(script, argv), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _chain(env, tmp_path, script, tiny, steps):
    """An uninterrupted run, then the same run through `steps` [(fault, expected status, what
    the last stderr line must contain)], each step resuming the last; then a clean resume.
    Returns the stderr of every step. The uninterrupted run goes alongside the first step."""
    argv = [*tiny, "--seed", "3"]
    with open(tmp_path / "ref.log", "w") as log:
        ref = subprocess.Popen(_command(script, argv + ["--out", str(tmp_path / "ref")]),
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            errs = _faulted(env, tmp_path / "faulted", script, argv, steps)
        finally:
            ref.wait(timeout=300)
    assert ref.returncode == 0, (tmp_path / "ref.log").read_text()[-2000:]
    out = tmp_path / "faulted"
    assert (out / "metrics.jsonl").read_bytes() == (tmp_path / "ref" / "metrics.jsonl").read_bytes()
    assert not list((out / "checkpoints").glob(".*.tmp"))
    assert len(list((out / "checkpoints").glob("*.msgpack"))) == 2  # newest and previous
    return errs


def _faulted(env, out, script, argv, steps):
    errs = []
    for i, (fault, status, fragment) in enumerate([*steps, (None, 0, "")]):
        p = _run(env, script, argv + ["--out", str(out)] + (["--resume"] if i else []), fault)
        assert p.returncode == status, (fault, p.stderr[-2000:])
        assert "Traceback" not in p.stderr, p.stderr[-2000:]
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        assert fragment in last, (fault, last)
        errs.append(p.stderr)
    return errs


@pytest.mark.slow
def test_pets_survives_kills_and_a_full_disk(env, tmp_path):
    # 3 episodes, a checkpoint after each (generations 1, 2, 3 if nothing goes wrong)
    errs = _chain(env, tmp_path, "experiments/pets.py", test_pets.TINY, [
        ("kill:metrics-torn:2", KILLED, ""),  # episode 2's line half written
        # episode 2 redone; its checkpoint fails: one line, status 1, generation 1 intact
        ("enospc:ckpt-state:1", 1, "No space left on device"),
        ("kill:ckpt-manifest:1", KILLED, ""),  # episode 2 redone: state file in, no manifest
    ])
    assert errs[1].strip().startswith("pets.py: error: writing ")
    assert len(errs[1].strip().splitlines()) == 1
    # the unfinished generation 2 is skipped with one line, and generation 1 used
    assert "pets.py: warning: checkpoint ckpt_000002.msgpack (no manifest" in errs[3]
    assert "resuming from the previous one, ckpt_000001.msgpack" in errs[3]


@pytest.mark.slow
def test_mbpo_survives_kills(env, tmp_path):
    # 2 episodes: killed after episode 1's checkpoint is committed but not pruned, then with
    # episode 2's metrics line written but not checkpointed
    _chain(env, tmp_path, "experiments/mbpo.py", test_mbpo.TINY, [
        ("kill:ckpt-commit:1", KILLED, ""),
        ("kill:metrics:1", KILLED, ""),
    ])


@pytest.mark.slow
def test_mcts_survives_kills(env, tmp_path):
    # 3 episodes: killed inside episode 2's checkpoint write (state temp file synced, not
    # renamed), then halfway through the redone episode 2's metrics line
    _chain(env, tmp_path, "experiments/mcts.py", test_mcts.TINY, [
        ("kill:ckpt-state:2", KILLED, ""),
        ("kill:metrics-torn:1", KILLED, ""),
    ])


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_sweep_killed_midway_finishes_on_rerun(tmp_path):
    """The sweep and its run are SIGKILLed together (one process group) in the second of four
    runs, after its second metrics line and before that line's checkpoint; a rerun skips the
    finished run, resumes the killed one and runs the rest: the same table as in test_sweep."""
    out = tmp_path / "sw"
    cmd = [sys.executable, str(ROOT / "experiments" / "sweep.py"), str(FAKE), "--seeds", "0",
           "1", "--grid", "scale=1,2", "--out", str(out), "--", "--episodes", "4"]
    env = {**os.environ, "FAKE_KILL_GROUP_SEED": "1"}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                       start_new_session=True)
    assert p.returncode == KILLED
    runs = out / "runs"
    assert (runs / "scale=1__seed=0" / "SWEEP_DONE").exists()
    assert len((runs / "scale=1__seed=1" / "metrics.jsonl").read_text().splitlines()) == 2
    assert not (runs / "scale=2__seed=0").exists()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "4 runs, 1 finished before, 3 to run (1 resumed)" in p.stdout
    summary = _csv(out / "summary.csv")
    # final = 4c + s; mean over s in {0, 1} = 4c + 0.5 (test_sweep.py)
    assert [float(r["final"]) for r in summary] == [4.5, 8.5]
    assert [r["status"] for r in _csv(out / "runs.csv")] == ["done"] * 4
