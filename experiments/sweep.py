"""Run an experiment script over seeds x config values; gather one table and one plot.

    python experiments/sweep.py experiments/pets.py --seeds 0 1 2 \\
        --grid planner.population=100,200 -- --episodes 5
    python experiments/sweep.py research/pets_reacher_onefile.py --seeds 0 1 2 3 \\
        --grid propagation=ts1,tsinf --grid population=25,100 --jobs 2 -- --total-steps 2000
    python experiments/sweep.py experiments/pets.py --seeds 0 1 2 3 4 \\
        --backend ray --address ray://head-node:10001 --out /shared/sweeps/pets

Every (grid point, seed) is one run of `python SCRIPT ARGS... --KEY VALUE... --seed S --out DIR`,
where ARGS are the flags after `--` and `--grid KEY=V1,V2` expands to `--KEY V1` and `--KEY V2`
(underscores become dashes: `model.hidden_size` -> `--model.hidden-size`; the values true and
false give the boolean flags `--KEY` and `--no-KEY`, as in `--grid use_model=true,false`, which
runs mbpo.py as MBPO and as plain SAC). Runs go to
`<out>/runs/<KEY=V__...__seed=S>/` and their output to `<out>/logs/<name>.log`.

Backends: `local` (default) runs `--jobs` processes at a time on this machine; `ray` submits
each run as a Ray task of `--cpus-per-run` CPUs (`--address` of a running cluster, or none for
a local one). Ray is optional (`pip install -e .[ray]`) and imported only here. Every node
must see the same paths (a shared filesystem): the runs write their directories directly.

Interrupted sweeps: rerun the same command. A run that finished (its directory has the
`SWEEP_DONE` marker, written when it exited with status 0) is skipped; an unfinished one is
continued with `--resume` if the script takes that flag and the run left a complete checkpoint,
and restarted from scratch otherwise (`--no-resume` forces restarts). One sweep runs in a
directory at a time: a second one into the same `--out` is refused, naming the first's process.
Reading the runs (status, metrics.jsonl) executes nothing from them: file names and JSON only.

Results: `<out>/runs.csv` (one row per run: its final value, the mean of the last `--last`
values of the y metric), `<out>/summary.csv` (one row per grid point: across seeds the mean, or
the interquartile mean from 4 seeds on, with a percentile-bootstrap 95% interval) printed as a
table, and `<out>/plots/sweep.png` (the same statistic and interval along training, each seed's
curve faint behind). The x and y metrics are found in metrics.jsonl (`env_steps`/`return`,
`global_step`/`charts/episodic_return`, ...) unless `--x`/`--y` name them.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DONE_MARKER = "SWEEP_DONE"
MANIFEST = "sweep.json"
X_KEYS = ("env_steps", "global_step", "step", "episode")
Y_KEYS = ("return", "charts/episodic_return", "episodic_return")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_RESERVED = {"seed", "out", "resume"}


class SweepError(ValueError):
    """Bad sweep input; the message names the value and what is allowed."""


@dataclass(frozen=True)
class RunSpec:
    """One run: its grid values (key, value string) in grid order, seed and paths."""

    name: str
    overrides: tuple[tuple[str, str], ...]
    seed: int
    out: Path
    log: Path

    @property
    def group(self) -> tuple[tuple[str, str], ...]:
        """The grid point: runs that differ only in seed share it."""
        return self.overrides


@dataclass
class SweepResult:
    """What `run_sweep` did and found."""

    specs: list[RunSpec]
    returncodes: dict[str, int]  # name -> exit status of the runs executed this time
    skipped: list[str]  # runs that had finished before
    rows: list[dict[str, Any]] = field(default_factory=list)  # runs.csv
    summary: list[dict[str, Any]] = field(default_factory=list)  # summary.csv
    plot: Path | None = None

    @property
    def failed(self) -> list[str]:
        return [n for n, rc in self.returncodes.items() if rc != 0]


# --- planning the runs --------------------------------------------------------------------------


def parse_grid(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`["a.b=1,2", "c=x"]` -> `[("a.b", ["1", "2"]), ("c", ["x"])]`, checked."""
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepError(f"--grid {item!r} must look like KEY=V1,V2 (e.g. population=100,200)")
        if not _KEY.match(key):
            raise SweepError(f"--grid key {key!r} must be a flag name (letters, digits, _ . -)")
        if key.replace("-", "_") in _RESERVED:
            raise SweepError(f"--grid key {key!r} is set by the sweep itself; use --seeds")
        vals = [v.strip() for v in values.split(",")]
        if not all(vals):
            raise SweepError(f"--grid {item!r} has an empty value; write KEY=V1,V2")
        if len(set(vals)) != len(vals):
            raise SweepError(f"--grid {item!r} repeats a value")
        if key in dict(grid):
            raise SweepError(f"--grid key {key!r} is given twice; list its values once")
        grid.append((key, vals))
    return grid


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


def plan_runs(grid: list[tuple[str, list[str]]], seeds: Sequence[int], out: Path) -> list[RunSpec]:
    """Every grid point x seed, grid points in grid order, seeds innermost."""
    keys = [k for k, _ in grid]
    specs = []
    for values in itertools.product(*(v for _, v in grid)):
        overrides = tuple(zip(keys, values, strict=True))
        for seed in seeds:
            name = "__".join([_safe(f"{k}={v}") for k, v in overrides] + [f"seed={seed}"])
            specs.append(
                RunSpec(name, overrides, seed, out / "runs" / name, out / "logs" / f"{name}.log")
            )
    return specs


def flag(key: str) -> str:
    """The command-line flag of a config key: `model.hidden_size` -> `--model.hidden-size`."""
    return "--" + key.replace("_", "-")


def command(script: Path, spec: RunSpec, extra: Sequence[str], resume: bool) -> list[str]:
    """The run's command line; a grid value `true`/`false` is a boolean flag: `--KEY` or
    `--no-KEY` (e.g. `--grid use_model=true,false` for mbpo.py's MBPO vs plain SAC)."""
    cmd = [sys.executable, str(script), *extra]
    for key, value in spec.overrides:
        if value.lower() in ("true", "false"):
            cmd.append(flag(key) if value.lower() == "true" else "--no-" + flag(key)[2:])
        else:
            cmd += [flag(key), value]
    cmd += ["--seed", str(spec.seed), "--out", str(spec.out)]
    return cmd + (["--resume"] if resume else [])


def supports_resume(script: Path) -> bool:
    """Whether the script has a `--resume` flag: its argparse usage line (`script --help`) shows
    `[--resume]`. Asked of the script itself, however it builds its parser."""
    out = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    return "[--resume]" in out.stdout


def status(spec: RunSpec) -> str:
    """'done' (finished), 'partial' (started, with a committed checkpoint), 'broken' (started,
    no complete checkpoint) or 'new'. Only names of files are looked at, never their contents."""
    from prototypes.data.runs import has_checkpoint

    if (spec.out / DONE_MARKER).exists():
        return "done"
    if not spec.out.exists():
        return "new"
    return "partial" if has_checkpoint(spec.out, complete=True) else "broken"


# --- executing them -----------------------------------------------------------------------------


def _run_one(cmd: list[str], cwd: str, out: str, log: str, marker: str) -> int:
    """Run one command with output to `log`; on status 0 write the done marker into `out`.

    Self-contained (stdlib imports inside) so that Ray can ship it to workers by value.
    """
    import json as _json
    import os as _os
    import subprocess as _subprocess
    import time as _time

    _os.makedirs(_os.path.dirname(log), exist_ok=True)
    start = _time.time()
    with open(log, "a") as f:
        f.write(f"=== {_time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        f.flush()
        rc = _subprocess.run(cmd, cwd=cwd, stdout=f, stderr=_subprocess.STDOUT).returncode
        f.write(f"=== exit status {rc} after {_time.time() - start:.1f} s\n")
    if rc == 0 and _os.path.isdir(out):
        payload = {"command": cmd, "seconds": _time.time() - start, "finished": _time.time()}
        with open(_os.path.join(out, marker), "w") as f:
            f.write(_json.dumps(payload) + "\n")
    return rc


def _execute_local(jobs: list[tuple[RunSpec, list[str]]], workers: int, report) -> dict[str, int]:
    codes: dict[str, int] = {}
    cwd = os.getcwd()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_run_one, cmd, cwd, str(s.out), str(s.log), DONE_MARKER): s
            for s, cmd in jobs
        }
        for fut in as_completed(futures):
            spec = futures[fut]
            codes[spec.name] = fut.result()
            report(spec, codes[spec.name], len(codes))
    return codes


def _execute_ray(
    jobs: list[tuple[RunSpec, list[str]]], address: str | None, cpus: float, local_cpus: int, report
) -> dict[str, int]:
    try:
        import ray
        from ray import cloudpickle
    except ImportError:
        raise SweepError(
            "--backend ray needs Ray: pip install -e '.[ray]' (or pip install 'ray[default]')"
        ) from None
    module = sys.modules[_run_one.__module__]
    if module.__name__ != "__main__":  # workers cannot import this script: ship it by value
        cloudpickle.register_pickle_by_value(module)
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=local_cpus, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=cpus, max_retries=0)(_run_one)
    cwd = os.getcwd()
    pending = {
        remote.remote(cmd, cwd, str(s.out), str(s.log), DONE_MARKER): s for s, cmd in jobs
    }
    codes: dict[str, int] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            spec = pending.pop(ref)
            try:
                codes[spec.name] = int(ray.get(ref))
            except ray.exceptions.RayError as e:  # the task itself died (node lost, ...)
                print(f"  ray task for {spec.name} failed: {type(e).__name__}: {e}")
                codes[spec.name] = -1
            report(spec, codes[spec.name], len(codes))
    return codes


# --- gathering ----------------------------------------------------------------------------------


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records, as RunDir.metrics reads them: JSON objects only (a torn last line,
    or any line that is not an object, is skipped); nothing in the file is executed."""
    from prototypes.data.runs import read_metrics

    return read_metrics(path)


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def pick_key(records: list[dict[str, Any]], wanted: str | None, candidates: Sequence[str]):
    """The metric key to use: `wanted` if given, else the first candidate the records have."""
    if wanted:
        return wanted
    present = set().union(*(r.keys() for r in records)) if records else set()
    return next((k for k in candidates if k in present), None)


def curve(
    records: list[dict[str, Any]], x_key: str | None, y_key: str | None
) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in records if y_key in r] if y_key else []
    y = np.array([_number(r[y_key]) for r in rows])
    if x_key:
        x = np.array([_number(r.get(x_key, np.nan)) for r in rows])
    else:
        x = np.arange(1, len(rows) + 1, dtype=float)
    return x, y


def gather(
    specs: list[RunSpec],
    out: Path,
    *,
    x_key: str | None = None,
    y_key: str | None = None,
    last: int = 1,
    seed: int = 0,
    title: str = "",
    hlines: dict[str, float] | None = None,
) -> tuple[list[dict], list[dict], Path | None]:
    """Read every run's metrics; write runs.csv, summary.csv and plots/sweep.png.

    Returns (rows, summary, plot path or None when there is nothing to plot).
    """
    from prototypes.data.stats import summarize

    metrics = {s.name: _read_metrics(s.out / "metrics.jsonl") for s in specs}
    all_records = [r for recs in metrics.values() for r in recs]
    x_key = pick_key(all_records, x_key, X_KEYS)
    y_key = pick_key(all_records, y_key, Y_KEYS)
    keys = [k for k, _ in specs[0].overrides] if specs else []
    rows, curves = [], {}
    for s in specs:
        x, y = curve(metrics[s.name], x_key, y_key)
        curves[s.name] = (x, y)
        rows.append({
            "run": s.name,
            **dict(s.overrides),
            "seed": s.seed,
            "status": status(s),
            "records": len(metrics[s.name]),
            "last_x": x[-1] if len(x) else "",
            "final": float(np.mean(y[-last:])) if len(y) else "",
        })
    rng = np.random.default_rng(seed)
    summary, groups = [], {}
    for s in specs:
        groups.setdefault(s.group, []).append(s)
    for group, members in groups.items():
        finals = [r["final"] for r in rows if r["run"] in {m.name for m in members}]
        finals = [f for f in finals if f != "" and np.isfinite(f)]
        entry: dict[str, Any] = {**dict(group), "runs": len(finals), "of": len(members)}
        if finals:
            stats = summarize(np.asarray(finals), rng)
            entry.update(statistic=stats.statistic, final=float(stats.center),
                         ci_low=float(stats.low), ci_high=float(stats.high))
        else:
            entry.update(statistic="", final="", ci_low="", ci_high="")
        summary.append(entry)
    _write_csv(out / "runs.csv", ["run", *keys, "seed", "status", "records", "last_x", "final"],
               rows)
    _write_csv(out / "summary.csv",
               [*keys, "runs", "of", "statistic", "final", "ci_low", "ci_high"], summary)
    plot = _plot(out, groups, curves, x_key, y_key, rng, title, hlines) if y_key else None
    return rows, summary, plot


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k, "")) for k in columns})
    os.replace(tmp, path)


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def format_table(summary: list[dict], keys: list[str], y_key: str | None, last: int) -> str:
    """The summary as an aligned text table."""
    what = f"{y_key or 'value'}" + (f" (mean of last {last})" if last > 1 else " (last)")
    header = [*keys, "runs", "stat", what, "95% CI"]
    lines = []
    for e in summary:
        ci = f"[{e['ci_low']:.4g}, {e['ci_high']:.4g}]" if e["final"] != "" else "-"
        final = f"{e['final']:.4g}" if e["final"] != "" else "-"
        lines.append([*(str(e[k]) for k in keys), f"{e['runs']}/{e['of']}", e["statistic"] or "-",
                      final, ci])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    fmt = lambda row: "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in lines])


def _plot(out, groups, curves, x_key, y_key, rng, title, hlines=None) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prototypes.data.stats import summarize

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=120)
    drew = False
    for i, (group, members) in enumerate(groups.items()):
        color = f"C{i % 10}"
        runs = [curves[m.name] for m in members if len(curves[m.name][1])]
        if not runs:
            continue
        label = ", ".join(f"{k}={v}" for k, v in group) or "all runs"
        for x, y in runs:
            ax.plot(x, y, color=color, alpha=0.2, linewidth=0.8)
        n = min(len(y) for _, y in runs)  # unfinished runs count over their common prefix
        grid_x = runs[0][0][:n]
        ys = np.stack([y[:n] for _, y in runs])  # seeds share the x schedule (same flags)
        stats = summarize(ys, rng)
        ax.plot(grid_x, stats.center, color=color, linewidth=2,
                label=f"{label} ({stats.statistic} of {stats.runs})")
        ax.fill_between(grid_x, stats.low, stats.high, color=color, alpha=0.2, linewidth=0)
        drew = True
    if not drew:
        plt.close(fig)
        return None
    for label, value in (hlines or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="gray")
        ax.annotate(label, (ax.get_xlim()[0], value), fontsize=7, color="gray", xytext=(2, 2),
                    textcoords="offset points")
    ax.set_xlabel(x_key or "record")
    ax.set_ylabel(y_key)
    ax.set_title(title or "sweep: bootstrap 95% CI across seeds, seeds faint", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "plots" / "sweep.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# --- the sweep ----------------------------------------------------------------------------------


def check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Refuse to mix two different sweeps in one directory (seeds may be added), and an `out`
    that cannot be written, before any run starts."""
    path = out / MANIFEST
    manifest = json.loads(json.dumps(manifest))  # tuples -> lists, as saved
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SweepError(f"{path} is unreadable ({type(e).__name__}); use another --out") \
                from None
        saved = saved if isinstance(saved, dict) else {}
        diff = [k for k in ("script", "grid", "extra") if saved.get(k) != manifest.get(k)]
        if diff:
            raise SweepError(
                f"{out} holds a different sweep (differs in: {', '.join(diff)}); "
                "use another --out or the same arguments"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{MANIFEST}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise SweepError(f"cannot write the sweep directory {out} ({e.strerror or e}); "
                         "choose a writable --out") from None


def run_sweep(
    script: Path,
    seeds: Sequence[int],
    grid: list[tuple[str, list[str]]],
    extra: Sequence[str],
    out: Path,
    *,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    cpus_per_run: float = 1.0,
    resume: bool = True,
    x_key: str | None = None,
    y_key: str | None = None,
    last: int = 1,
    execute: bool = True,
    hlines: dict[str, float] | None = None,
    log=print,
) -> SweepResult:
    """Run what is missing of the sweep (unless `execute` is False), then gather the results."""
    script = Path(script).resolve()
    if not script.is_file():
        raise SweepError(f"no experiment script at {script}")
    out = Path(out).resolve()
    check_manifest(out, {"script": str(script), "grid": grid, "extra": list(extra),
                         "seeds": list(seeds)})
    if execute:
        from prototypes.data.runs import RunDirError, lock_dir, unlock_dir

        try:  # one sweep per directory: a duplicate would restart the first one's runs
            lock_dir(out, [sys.executable, *sys.argv])
        except RunDirError as e:
            raise SweepError(str(e)) from None
        try:
            return _run_sweep(script, seeds, grid, extra, out, jobs=jobs, backend=backend,
                              address=address, cpus_per_run=cpus_per_run, resume=resume,
                              x_key=x_key, y_key=y_key, last=last, execute=execute,
                              hlines=hlines, log=log)
        finally:
            unlock_dir(out)
    return _run_sweep(script, seeds, grid, extra, out, jobs=jobs, backend=backend,
                      address=address, cpus_per_run=cpus_per_run, resume=resume, x_key=x_key,
                      y_key=y_key, last=last, execute=execute, hlines=hlines, log=log)


def _run_sweep(script, seeds, grid, extra, out, *, jobs, backend, address, cpus_per_run, resume,
               x_key, y_key, last, execute, hlines, log) -> SweepResult:
    specs = plan_runs(grid, seeds, out)
    can_resume = None  # asked of the script (`--help`) once, if some run is partial
    todo, skipped = [], []
    for s in specs:
        st = status(s)
        if st == "done":
            skipped.append(s.name)
            continue
        if st == "partial" and resume and can_resume is None:
            can_resume = supports_resume(script)
        cont = st == "partial" and resume and bool(can_resume)
        if st in ("partial", "broken") and not cont and execute:
            shutil.rmtree(s.out)  # an unfinished run that cannot be continued starts over
        todo.append((s, command(script, s, extra, resume=cont)))
    log(f"sweep {script.name}: {len(specs)} runs, {len(skipped)} finished before, "
        f"{len(todo)} to run ({sum('--resume' in c for _, c in todo)} resumed) -> {out}")
    codes: dict[str, int] = {}
    if execute and todo:
        start = time.perf_counter()

        def report(spec: RunSpec, rc: int, k: int) -> None:
            what = "done" if rc == 0 else f"FAILED (exit {rc}), see {spec.log}"
            log(f"  [{k}/{len(todo)}] {spec.name}: {what} ({time.perf_counter() - start:.0f} s)")

        if backend == "local":
            codes = _execute_local(todo, jobs, report)
        elif backend == "ray":
            codes = _execute_ray(todo, address, cpus_per_run, jobs, report)
        else:
            raise SweepError(f"unknown backend {backend!r}: choose local or ray")
    title = f"{script.name}: " + (" ".join(extra) if extra else "default flags")
    rows, summary, plot = gather(specs, out, x_key=x_key, y_key=y_key, last=last, title=title,
                                 hlines=hlines)
    return SweepResult(specs, codes, skipped, rows, summary, plot)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweep.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("script", type=Path,
                   help="the experiment script to run (e.g. experiments/pets.py)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S",
                   help="seeds, one run per seed and grid point (default: 0)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a config flag and its values; repeat for a product grid")
    p.add_argument("--out", type=Path, default=None,
                   help="sweep directory (default: runs/sweep_<script name>)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time (local backend; CPUs of a local Ray cluster) (default: 1)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes, or tasks on a Ray cluster (default: local)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (ray://host:10001 or auto); none starts a local one")
    p.add_argument("--cpus-per-run", type=float, default=1.0,
                   help="CPUs a Ray task reserves (default: 1)")
    p.add_argument("--no-resume", action="store_true",
                   help="restart unfinished runs from scratch instead of passing --resume")
    p.add_argument("--x", dest="x_key", default=None,
                   help=f"x metric of the plot (default: first of {', '.join(X_KEYS)})")
    p.add_argument("--y", dest="y_key", default=None,
                   help=f"y metric (default: first of {', '.join(Y_KEYS)})")
    p.add_argument("--last", type=int, default=1,
                   help="a run's final value is the mean of its last N y values (default: 1)")
    p.add_argument("--gather-only", action="store_true",
                   help="run nothing: only rebuild the table and plot from what exists")
    return p


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Sweep flags before `--`, the experiment's own flags after it."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep; returns 0 if every run has finished, 1 if any failed (2: bad input)."""
    own, extra = split_argv(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(own)
    try:
        if ns.jobs < 1:
            raise SweepError(f"--jobs must be >= 1, got {ns.jobs}")
        if ns.last < 1:
            raise SweepError(f"--last must be >= 1, got {ns.last}")
        if not 0 < ns.cpus_per_run < float("inf"):
            raise SweepError(f"--cpus-per-run must be a number > 0, got {ns.cpus_per_run}")
        if len(set(ns.seeds)) != len(ns.seeds):
            raise SweepError(f"--seeds repeats a seed: {ns.seeds}")
        for bad in ("--seed", "--out", "--resume"):
            if any(a == bad or a.startswith(bad + "=") for a in extra):
                raise SweepError(f"{bad} after -- is set by the sweep itself; remove it")
        grid = parse_grid(ns.grid)
        out = ns.out or Path("runs") / f"sweep_{Path(ns.script).stem}"
        result = run_sweep(ns.script, ns.seeds, grid, extra, out, jobs=ns.jobs,
                           backend=ns.backend, address=ns.address, cpus_per_run=ns.cpus_per_run,
                           resume=not ns.no_resume, x_key=ns.x_key, y_key=ns.y_key,
                           last=ns.last, execute=not ns.gather_only)
    except SweepError as e:
        parser.error(str(e))
    records = [r for s in result.specs for r in _read_metrics(s.out / "metrics.jsonl")]
    print(format_table(result.summary, [k for k, _ in grid],
                       pick_key(records, ns.y_key, Y_KEYS), ns.last))
    print(f"wrote {Path(out) / 'runs.csv'}, {Path(out) / 'summary.csv'}"
          + (f", {result.plot}" if result.plot else ""))
    if result.failed:
        print(f"{len(result.failed)} run(s) failed: {', '.join(result.failed)}; rerun the same "
              "command to retry them (finished runs are skipped)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
