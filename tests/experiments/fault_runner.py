"""Run an experiment script with one fault armed, for tests/experiments/test_faults.py.

    FAULT=kill:ckpt-state:2 python tests/experiments/fault_runner.py experiments/pets.py ARGS...

FAULT is `<what>:<where>:<n>`: at the n-th time (1-based) the run reaches <where>, <what>
happens. <what> is `kill` (SIGKILL this process: nothing is cleaned up, as with `kill -9` or a
power cut) or `enospc` (the write fails with "No space left on device"). <where>, in the order a
checkpoint and a metrics line are written by prototypes/data/runs.py:

- ckpt-state     syncing a checkpoint's state file (its temp file is written, not yet renamed)
- ckpt-manifest  syncing its manifest (the state file is in place, the manifest is not)
- ckpt-commit    syncing the checkpoints directory (committed, older generations not pruned)
- metrics        syncing a metrics.jsonl append (the line is in, its checkpoint is not)
- metrics-torn   halfway through writing a metrics line (kill only)

The first four hook `os.fsync` and tell the file from /proc/self/fd, so the code under test runs
unchanged up to the fault; `metrics-torn` writes half of the line itself, since a line is one
write() call that a signal cannot split.
"""

import errno
import json
import os
import runpy
import signal
import sys
from pathlib import Path

from prototypes.data import runs


def _where(fd: int) -> str | None:
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    name = Path(path).name
    if name.startswith(".ckpt_") and ".msgpack." in name:
        return "ckpt-state"
    if name.startswith(".ckpt_") and ".json." in name:
        return "ckpt-manifest"
    if name == "checkpoints":
        return "ckpt-commit"
    if name == "metrics.jsonl":
        return "metrics"
    return None


def arm(fault: str) -> None:
    what, where, n = fault.split(":")
    count = {"n": 0}

    def due(here: str | None) -> bool:
        if here != where:
            return False
        count["n"] += 1
        return count["n"] == int(n)

    def strike() -> None:
        if what == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "metrics-torn":
        log = runs.RunDir.log

        def torn_log(self, record):
            if due("metrics-torn"):
                line = json.dumps(runs._jsonable(record), sort_keys=True) + "\n"
                with open(self.metrics_path, "a") as f:
                    f.write(line[: len(line) // 2])
                strike()
            log(self, record)

        runs.RunDir.log = torn_log
        return
    fsync = os.fsync

    def hooked_fsync(fd):
        if due(_where(fd if isinstance(fd, int) else fd.fileno())):
            strike()
        return fsync(fd)

    os.fsync = hooked_fsync


if __name__ == "__main__":
    if os.environ.get("FAULT"):
        arm(os.environ["FAULT"])
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
