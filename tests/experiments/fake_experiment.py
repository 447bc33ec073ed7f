"""A trivial experiment for the sweep tests: no JAX, a run takes a fraction of a second.

Episode e (1..episodes) logs {"episode": e, "env_steps": 10 e, "return": scale * e + seed} to
<out>/metrics.jsonl and then checkpoints {"episode": e} as checkpoints/ckpt_<e>.json (a JSON
stand-in, named as prototypes/data/runs.py names a committed checkpoint's manifest, so that the
sweep sees it as one). `--resume` continues from the newest checkpoint. Every invocation appends
its argv to <out>/invocations.txt. If the environment variable FAKE_DIE_SEED equals --seed, the
run exits with status 3 after FAKE_DIE_AFTER (default 2) episodes, as if it were killed; if
FAKE_KILL_GROUP_SEED equals --seed, it SIGKILLs its whole process group (the sweep that started
it included) after FAKE_DIE_AFTER episodes' metrics, before their checkpoint.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true")
    ns = p.parse_args(argv)
    out: Path = ns.out
    ckpts = out / "checkpoints"
    if ns.resume:
        start = max(json.loads(c.read_text())["episode"] for c in ckpts.glob("ckpt_*.json"))
        lines = (out / "metrics.jsonl").read_text().splitlines()[:start]
        (out / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    else:
        if (out / "config.json").exists():
            sys.exit(f"fake_experiment: error: {out} already holds a run")
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"config": vars(ns) | {"out": str(out)}}))
        start = 0
    with open(out / "invocations.txt", "a") as f:
        f.write(" ".join(sys.argv[1:] if argv is None else argv) + "\n")
    die = os.environ.get("FAKE_DIE_SEED")
    kill = os.environ.get("FAKE_KILL_GROUP_SEED")
    die_after = int(os.environ.get("FAKE_DIE_AFTER", 2))
    for e in range(start + 1, ns.episodes + 1):
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"episode": e, "env_steps": 10 * e,
                                "return": ns.scale * e + ns.seed}) + "\n")
        if kill is not None and int(kill) == ns.seed and e == die_after:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        ckpts.mkdir(exist_ok=True)
        (ckpts / f"ckpt_{e:06d}.json").write_text(json.dumps({"episode": e}))
        if die is not None and int(die) == ns.seed and e == die_after:
            sys.exit(3)


if __name__ == "__main__":
    main()
