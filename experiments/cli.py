"""The command line every experiment script shares: run-directory flags, progress bar, exit codes.

Only `experiments/` imports this module; the library tier (`prototypes/`) does no argparse,
printing, exiting or wall-clock reads. The run directory itself is `prototypes/data/runs.py`.

- `CommandLine`: an experiment's whole command line, described once: its config class, its
  defaults as layers, its aliases and its run directory. `parse` reads argv once, in one place:
  class defaults, then each layer whose selectors match (the experiment's own defaults, the
  task's, the model kind's), then the flags. `run` parses and opens the run directory.
- `add_run_arguments`: --out, --resume, --no-progress.
- `run_experiment`: open (or reopen) the run directory and train; bad input ends in one line.
- `one_line_warnings`, `fail`: a run-directory warning, or a fatal error, as one line on stderr.
- `progress_bar`, `Throttle`: what a person watching the run sees, and how often.

Selectors are the fields that decide which other fields exist or what their defaults are:
`env` (per-task defaults) and `model_kind` (`--model KIND`: the `model` field's class is the
kind's registered config, so `--model.<field>` flags follow the kind; see
prototypes/models/registry.py). They are read from argv first, so `--help` shows the defaults
that will really apply, e.g. `pets.py --env pusher --model oracle --help`. `--variant help` prints
the chosen env's task variants (prototypes/envs/variants.py) with their ranges.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from prototypes import config as cfglib
from prototypes.config import ConfigError
from prototypes.data.runs import (
    CheckpointError,
    RunDir,
    RunDirError,
    RunWarning,
    RunWriteError,
    config_differences,
    open_run,
)
from prototypes.envs.variants import describe_variants
from prototypes.models.registry import get_model_kind, model_config, model_kinds

__all__ = [
    "Layer",
    "CommandLine",
    "Throttle",
    "progress_bar",
    "add_run_arguments",
    "run_experiment",
    "one_line_warnings",
    "fail",
]


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


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Inside: a `RunWarning` from the run directory (a corrupt newest checkpoint skipped, say)
    is printed at once as one line `<prog>: warning: ...` on stderr."""

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, RunWarning):
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:  # other warnings as usual
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", RunWarning)
        warnings.showwarning = show
        yield


def fail(prog: str, message: str, status: int = 1) -> NoReturn:
    """End the process with one line `<prog>: error: <message>` on stderr."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def run_experiment(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    config: dict,
    ns: argparse.Namespace,
    default_out: Path,
    train: Callable[[RunDir, bool, bool], RunDir],
    fatal: tuple[type[BaseException], ...] = (),
    added_defaults: dict | None = None,
) -> RunDir:
    """Open (or, with ns.resume, reopen) the run directory and call train(run, resume, progress).

    Before any work, a bad --out (not creatable or writable, in use by another process, holding
    another run) or a bad checkpoint ends through `parser.error` (one line, exit status 2), as
    does a checkpoint found unusable when `train` loads it. A write failing mid-run (disk full)
    or an error in `fatal` (a diverged model, say) ends as one line `<prog>: error: ...` with
    exit status 1. Warnings from the run directory (falling back to the previous checkpoint)
    are one line each. The run directory's writer lock is released when this returns.
    `added_defaults` lets a run saved before a config field existed resume (`open_run`).
    """
    with one_line_warnings(parser.prog):
        try:
            run = open_run(
                ns.out or default_out,
                config,
                resume=ns.resume,
                argv=list(argv),
                added_defaults=added_defaults,
            )
        except (CheckpointError, FileExistsError, RunDirError) as e:
            parser.error(str(e))
        try:
            return train(run, ns.resume, not ns.no_progress)
        except CheckpointError as e:
            parser.error(str(e))
        except RunWriteError as e:
            fail(parser.prog, str(e))
        except fatal as e:
            fail(parser.prog, str(e))
        finally:
            run.close()


# fields read before the parse: they pick other fields' defaults or classes (and `--variant help`
# lists the chosen env's variants)
SELECTORS = ("env", "model_kind", "variant")


@dataclasses.dataclass(frozen=True)
class Layer:
    """Config values (dotted names) that replace the defaults when every selector in `when`
    matches, e.g. `Layer({"planner.horizon": 25}, when={"env": "pusher"})`; no `when`: always."""

    values: Mapping[str, Any]
    when: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def applies(self, selected: Mapping[str, Any]) -> bool:
        return all(selected.get(k) == v for k, v in self.when.items())


@dataclasses.dataclass(frozen=True)
class CommandLine:
    """One experiment's command line (module docstring).

    Attributes:
        prog: the script's name in messages ("pets.py").
        description: --help's text (the script's docstring).
        config: the experiment's frozen config class. If it has `model_kind` and `model`
            fields, `model` holds the config of the registered kind `model_kind`.
        out: the default run directory, formatted with the config's fields
            ("runs/pets_{env}_{seed}"), or a function of the config giving it.
        out_help: how --help shows the default run directory (default: `out` itself).
        layers: defaults over the class defaults, applied in order where they match.
        aliases: short flag names (`{"planner.horizon": "horizon"}`), one or a tuple per field.
        resume_help: --resume's help text.
        results: a finished run's summary row ({column: value}) from its config and run
            directory; given, the script takes `--results CSV` and writes the row there
            (`write_results_row`), so a figure it reports leaves the machine as a small CSV.
    """

    prog: str
    description: str
    config: type
    out: str | Callable[[Any], str]
    out_help: str | None = None
    layers: Sequence[Layer] = ()
    aliases: Mapping[str, str | tuple[str, ...]] = dataclasses.field(default_factory=dict)
    resume_help: str = "continue the run in --out from its last checkpoint"
    results: Callable[[Any, RunDir], dict] | None = None

    def _has(self, name: str) -> bool:
        return any(f.name == name for f in dataclasses.fields(self.config))

    def defaults(self, **selected: Any) -> Any:
        """The config with no flags given, for the selector values in `selected` (class
        defaults for the rest): class defaults, then every matching layer, checked once.

        A model kind other than the class's default starts from that kind's config defaults;
        an unknown kind is left for the parser to refuse (naming the registered ones).

        Raises:
            ConfigError: a bad selector value or a layer naming no field.
        """
        cfg = self.config()
        picked = {k: getattr(cfg, k) for k in SELECTORS if self._has(k)}
        picked.update({k: v for k, v in selected.items() if v is not None})
        if self._has("model_kind") and picked["model_kind"] != cfg.model_kind:
            if picked["model_kind"] not in model_kinds():
                picked["model_kind"] = cfg.model_kind
            else:
                kind_cfg = model_config(picked["model_kind"])()
                # the other selectors (the env) go in at once: a kind's check reads them
                cfg = dataclasses.replace(cfg, **{**picked, "model": kind_cfg})
        overrides = dict(picked)
        for layer in self.layers:
            if layer.applies(picked):
                overrides.update(layer.values)
        return cfglib.replace_flat(cfg, overrides)

    def _selected(self, argv: Sequence[str]) -> dict[str, Any]:
        pre = argparse.ArgumentParser(add_help=False)
        for name in SELECTORS:
            if self._has(name):
                flags = [f"--{name.replace('_', '-')}"]
                flags += [f"--{a}" for a in cfglib.alias_list(self.aliases.get(name))]
                pre.add_argument(*flags, dest=name, default=None)
        return vars(pre.parse_known_args(list(argv))[0])

    def parser(self, cfg: Any) -> argparse.ArgumentParser:
        """The parser whose defaults are `cfg` (from `defaults`), with the run flags."""
        parser = argparse.ArgumentParser(
            prog=self.prog,
            description=self.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=self._epilog(),
        )
        choices = {"model_kind": model_kinds()} if self._has("model_kind") else {}
        cfglib.add_arguments(parser, cfg, aliases=self.aliases, choices=choices)
        shown = self.out_help or str(self.out).replace("{", "<").replace("}", ">")
        add_run_arguments(parser, shown, self.resume_help)
        if self.results is not None:
            parser.add_argument(
                "--results",
                type=Path,
                default=None,
                metavar="CSV",
                help="when the run has finished, write its summary row to this CSV (a row of "
                "the same run directory name is replaced; e.g. experiments/results/NAME.csv)",
            )
        return parser

    def _epilog(self) -> str:
        lines = []
        if self._has("model_kind"):
            lines.append("World models (--model KIND; --model KIND --help lists its flags):")
            lines += [f"  {k}: {get_model_kind(k).help}" for k in model_kinds()]
        for layer in self.layers:
            when = " and ".join(f"{k}={v}" for k, v in layer.when.items()) or "always"
            values = ", ".join(f"{k}={v}" for k, v in layer.values.items())
            lines.append(f"Defaults when {when}: {values}")
        return "\n".join(lines)

    def parse(self, argv: Sequence[str]) -> tuple[Any, argparse.Namespace]:
        """(config, namespace) from argv: class defaults, then the matching layers, then the
        flags. Bad input ends in one line, exit status 2."""
        cfg, ns, _ = self._parse(argv)
        return cfg, ns

    def saved_config(self, path: Path | str) -> Any:
        """The config of this script's run directory at `path`, parsed again from the command
        line it saved, and checked against the config it saved (as `--resume` checks it: fields
        added since match at their declared defaults).

        Raises:
            ValueError: `path` holds no run, or this code's defaults make its command line mean
                another config (one line naming the run and the first differing fields).
        """
        import json

        config_path = Path(path) / "config.json"
        if not config_path.is_file():
            raise ValueError(f"{path}: no config.json here (not a run directory)")
        meta = json.loads(config_path.read_text())
        if "argv" not in meta or "config" not in meta:
            raise ValueError(f"{path}: config.json is not a {self.prog} run's (no argv or config)")
        cfg = self.parse(meta["argv"])[0]
        diff, _ = config_differences(
            meta["config"], cfglib.to_dict(cfg), cfglib.declared_defaults(cfg)
        )
        if diff:
            raise ValueError(
                f"{path}: its command line gives another config with this code than the run "
                f"saved (differs in: {', '.join(diff[:5])}{', ...' if len(diff) > 5 else ''}): "
                "the defaults changed since it ran"
            )
        return cfg

    def _parse(
        self, argv: Sequence[str]
    ) -> tuple[Any, argparse.Namespace, argparse.ArgumentParser]:
        argv = list(argv)
        selected = self._selected(argv)
        if selected.get("variant") == "help":
            env = selected.get("env") or self.config().env
            try:
                print(describe_variants(env))
            except ValueError as e:
                argparse.ArgumentParser(prog=self.prog).error(str(e))
            sys.exit(0)
        try:
            cfg = self.defaults(**selected)
        except ConfigError as e:
            argparse.ArgumentParser(prog=self.prog).error(str(e))
        parser = self.parser(cfg)
        ns = parser.parse_args(argv)
        try:
            return cfglib.from_args(cfg, ns), ns, parser
        except ConfigError as e:
            parser.error(str(e))

    def run(
        self,
        argv: Sequence[str] | None,
        train: Callable[..., RunDir],
        fatal: tuple[type[BaseException], ...] = (),
    ) -> RunDir:
        """Parse argv (sys.argv[1:] if None), open the run directory and call
        `train(cfg, run, resume=..., progress=...)` (see `run_experiment`)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        cfg, ns, parser = self._parse(argv)
        fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
        out = Path(self.out(cfg) if callable(self.out) else self.out.format(**fields))
        run = run_experiment(
            parser,
            argv,
            cfglib.to_dict(cfg),
            ns,
            out,
            lambda run, resume, progress: train(cfg, run, resume=resume, progress=progress),
            fatal=fatal,
            added_defaults=cfglib.declared_defaults(cfg),
        )
        if self.results is not None and getattr(ns, "results", None) is not None:
            write_results_row(ns.results, {"run": run.path.name, **self.results(cfg, run)})
        return run


def write_results_row(path: Path, row: dict) -> None:
    """Write `row` into the CSV at `path` (created with a header from the row's keys), replacing
    a row with the same "run"; rows stay sorted by run. The file is replaced atomically."""
    import csv
    import os

    path = Path(path)
    rows = []
    if path.exists():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("run") != row["run"]]
    rows = sorted([*rows, {k: str(v) for k, v in row.items()}], key=lambda r: r["run"])
    fields = list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
