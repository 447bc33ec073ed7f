"""Every experiment script (each experiments/*.py with a __main__) on bad input: an unwritable
--out, a non-numeric or NaN number, a zero or negative size, an unknown env (or maze, task,
reproduction) or variant. Each must end with one line `<prog>: error: ...` naming the value,
exit status 2, no traceback, and write nothing. Parse errors come before any JAX work, so the
whole matrix runs in-process in a few seconds.
"""

import re
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
BAD_OUT = "{tmp}/a_file/run"  # under a regular file: cannot be created, even as root

UNWRITABLE = ("--out", BAD_OUT)
CASES = {
    "pets": [
        (UNWRITABLE, "cannot create run directory {tmp}/a_file/run (Not a directory)"),
        (("--episodes", "many"), "argument --episodes: invalid int value: 'many'"),
        (("--model.learning-rate", "nan"), "'nan' is not a finite number"),
        (("--model.learning-rate", "fast"), "invalid number: 'fast'"),
        (("--episodes", "0"), "episodes must be >= 1, got 0"),
        (("--population", "-5"), "planner.population must be >= 1, got -5"),
        (
            ("--model.rollout-horizon", "-1"),
            "model.rollout_horizon must be >= 0 (0 is off), got -1",
        ),
        (("--env", "cartpole"), "unknown env 'cartpole': choose from"),
        (("--variant", "colour=7"), "colour"),
        (
            ("--env", "cartpole", "--model", "structured"),
            "unknown env 'cartpole': choose from",
        ),
    ],
    "mcts": [
        (UNWRITABLE, "cannot create run directory"),
        (("--simulations", "x"), "invalid int value: 'x'"),
        (("--model.learning-rate", "inf"), "'inf' is not a finite number"),
        (("--episodes", "0"), "episodes must be >= 1, got 0"),
        (("--simulations", "-1"), "-1"),
        (("--env", "reacher9"), "unknown env 'reacher9'"),
        (("--variant", "goal=banana"), "banana"),
    ],
    "mbpo": [
        (UNWRITABLE, "cannot create run directory"),
        (("--steps", "1e3"), "invalid int value: '1e3'"),
        (("--sac.gamma", "nan"), "'nan' is not a finite number"),
        (("--steps", "0"), "steps must be >= 1, got 0"),
        (("--sac.batch-size", "-2"), "-2"),
        (("--env", "cartpole"), "unknown env 'cartpole'"),
        (("--variant", "gravity=2"), "gravity"),
    ],
    "model_error": [
        (UNWRITABLE, "cannot create run directory"),
        (("--horizon", "ten"), "invalid int value: 'ten'"),
        (("--noise", "nan"), "'nan' is not a finite number"),
        (("--horizon", "0"), "horizon must be >= 1, got 0"),
        (("--train-episodes", "-4"), "train_episodes must be >= 2, got -4"),
        (("--env", "cartpole"), "unknown env 'cartpole'"),
        (("--variant", "mass=banana"), "banana"),
        (
            ("--structured.rollout-horizon", "-2"),
            "model.rollout_horizon must be >= 0 (0 is off), got -2",
        ),
    ],
    "dyna_maze": [
        (UNWRITABLE, "cannot create run directory"),
        (("--runs", "three"), "invalid int value: 'three'"),
        (("--alpha", "nan"), "nan"),
        (("--runs", "0"), "runs must be > 0, got 0"),
        (("--episodes", "-1"), "-1"),
        (("--maze", "labyrinth"), "invalid choice: 'labyrinth'"),
    ],
    "factored_arm": [
        (UNWRITABLE, "cannot create run directory"),
        (("--mdp-seeds", "two"), "invalid int value: 'two'"),
        (("--mdp-determinism", "nan"), "'nan' is not a finite number"),
        (("--mdp-seeds", "0"), "0"),
        (("--eval-episodes", "-3"), "-3"),
        (("--samples", "10,x"), "x"),
    ],
    "schema_recovery": [
        (UNWRITABLE, "cannot create run directory"),
        (("--height", "tall"), "invalid int value: 'tall'"),
        (("--p-block", "nan"), "'nan' is not a finite number"),
        (("--width", "0"), "width must be >= 1, got 0"),
        (("--max-seeds", "-1"), "-1"),
        (("--samples", "10,x"), "x"),
    ],
    "schema_arm": [
        (UNWRITABLE, "cannot create run directory"),
        (("--train-episodes", "many"), "invalid int value: 'many'"),
        (("--eval-episodes", "0"), "eval_episodes must be >= 1, got 0"),
        (("--layouts", "train,maze"), "unknown layout 'maze': choose from"),
        (("--seeds", "a"), "seeds must be comma-separated integers, got 'a'"),
    ],
    "bp_benchmark": [
        (("--out", "{tmp}/a_file/results.json"), "cannot write --out {tmp}/a_file/results.json"),
        (("--batch", "lots"), "invalid int value: 'lots'"),
        (("--damping", "nan"), "'nan' is not a finite number"),
        (("--batch", "0"), "--batch must be >= 1, got 0"),
        (("--iters", "-1"), "--iters must be >= 1, got -1"),
        (("--damping", "1.5"), "--damping must be in [0, 1), got 1.5"),
    ],
    "reproduce": [
        (("pets-reacher", "--out", BAD_OUT), "cannot write the sweep directory"),
        (("pets-reacher", "--jobs", "two"), "invalid int value: 'two'"),
        (("pets-reacher", "--jobs", "0"), "--jobs must be >= 1, got 0"),
        (("pets-cartpole",), "invalid choice: 'pets-cartpole'"),
    ],
    "sweep": [
        (("{fake}", "--out", BAD_OUT), "cannot write the sweep directory"),
        (("{fake}", "--jobs", "x"), "invalid int value: 'x'"),
        (("{fake}", "--cpus-per-run", "nan"), "--cpus-per-run must be a number > 0, got nan"),
        (("{fake}", "--jobs", "-1"), "--jobs must be >= 1, got -1"),
        (("{tmp}/no_such_script.py",), "no experiment script at"),
    ],
    "shell": [
        (("--seed", "x"), "invalid int value: 'x'"),
    ],
    "transfer": [
        (UNWRITABLE, "cannot create run directory"),
        (("--eval-episodes", "many"), "invalid int value: 'many'"),
        (("--eval-episodes", "0"), "eval_episodes must be >= 1, got 0"),
        (("--env", "cartpole"), "unknown env 'cartpole'"),
        (("--models", "ensemble,banana"), "unknown model 'banana'"),
        (
            ("--seeds", "2", "--oracle-seeds", "3"),
            "oracle_seeds must be in [0, seeds=2] (0: all), got 3",
        ),
        (("--factors", "colour"), "unknown variant factor 'colour' for pusher"),
        (("--factors", "mass=1~1"), "variant mass=1.0~1.0 is an empty range"),
        (("--factors", "mass=2~1"), "variant mass=2.0~1.0 is an inverted range"),
        (("--factors", "mass=-1~2"), "variant mass=-1.0 is outside its physical range"),
        (("--factors", "size=-0.5~1"), "variant size=-0.5 is outside its physical range"),
        (("--first-seed", "-1"), "first_seed must be >= 0, got -1"),
        (
            ("--only-conditions", "train,mass:tset"),
            "only_conditions names 'mass:tset': this suite's conditions are train, mass:held, "
            "mass:test",
        ),
    ],
    "summarize": [
        (("{tmp}/no_run",), "{tmp}/no_run: no config.json here (not a run directory)"),
        (("--results", "{tmp}/out.csv"), "the following arguments are required: runs"),
        (
            ("{tmp}/no_run", "--plot", "{tmp}/fig.pdf"),
            "--plot {tmp}/fig.pdf: the figure is a PNG; name a file ending in .png",
        ),
    ],
    "convert_checkpoint": [
        (("{tmp}/no_run",), "no pickle checkpoint at {tmp}/no_run/checkpoints/latest.pkl"),
    ],
}


def _scripts() -> list[str]:
    return sorted(
        p.stem
        for p in (ROOT / "experiments").glob("*.py")
        if 'if __name__ == "__main__":' in p.read_text()
    )


def test_every_script_has_bad_input_cases():
    assert _scripts() == sorted(CASES)


_loaded: dict = {}


def _main(name):
    if name not in _loaded:
        _loaded[name] = load_script(f"experiments/{name}.py", f"{name}_bad_input_script")
    module = _loaded[name]
    if name == "bp_benchmark":
        return lambda argv: module.main(module.parse_args(argv))
    return module.main


def _params():
    for name, cases in CASES.items():
        for case in cases:
            values, marks = (case.values, case.marks) if hasattr(case, "marks") else (case, ())
            yield pytest.param(name, *values, marks=marks, id=f"{name}:{' '.join(values[0])}")


@pytest.mark.parametrize("name, argv, fragment", list(_params()))
def test_bad_input_is_one_line_with_status_2(name, argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default --out would land here, not in the repository
    (tmp_path / "a_file").write_text("")
    fill = lambda s: s.format(tmp=tmp_path, fake=ROOT / "tests/experiments/fake_experiment.py")
    argv = [fill(a) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        _main(name)(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    prog = {"bp_benchmark": "bp_benchmark.py"}.get(name, f"{name}.py")
    assert re.match(rf"{re.escape(prog)}: error: ", last), last
    assert fill(fragment) in last, last
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing was written


# --- crafted run directories: reading them executes nothing ------------------------------------


class _Payload:
    """Unpickling this creates the file `path`: what a crafted pickle would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _evil(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(_Payload(marker))


def _manifest_for(payload: bytes) -> str:
    import hashlib
    import json

    return json.dumps(
        {
            "format": "pmbrl-checkpoint",
            "version": 1,
            "generation": 1,
            "bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
    )


def _object_array_msgpack() -> bytes:
    """Valid msgpack whose one array claims dtype 'O' (Python objects)."""
    import msgpack

    array = msgpack.packb([[2], b"O", b"\x00" * 16])
    return msgpack.packb({"state": msgpack.ExtType(1, array)})


@pytest.mark.slow
def test_resume_of_a_crafted_run_directory_executes_nothing(tmp_path, capsys):
    from prototypes import config as cfglib
    from prototypes.data.runs import open_run
    from tests.experiments.test_pets import TINY

    pets = _main("pets")
    marker = tmp_path / "pwned"
    argv = [*TINY, "--out", str(tmp_path / "r")]
    cfg, _ = _loaded["pets"].parse_config(argv)
    run = open_run(tmp_path / "r", cfglib.to_dict(cfg), resume=False)
    run.close()
    ckpts = run.path / "checkpoints"
    ckpts.mkdir()
    (ckpts / "latest.pkl").write_bytes(_evil(marker))  # an old-format checkpoint
    (run.path / "metrics.jsonl").write_bytes(_evil(marker))
    (run.path / "writer.lock").write_bytes(_evil(marker))

    def resume(fragment):
        with pytest.raises(SystemExit) as exc:
            pets(argv + ["--resume"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "Traceback" not in err
        assert fragment in err.strip().splitlines()[-1]

    resume("is a pickle checkpoint from an older pmbrl and is not loaded")
    for payload in (_evil(marker), _object_array_msgpack()):  # with a matching checksum
        (ckpts / "ckpt_000001.msgpack").write_bytes(payload)
        (ckpts / "ckpt_000001.json").write_text(_manifest_for(payload))
        resume("ckpt_000001.msgpack is corrupt or incomplete")
    (ckpts / "ckpt_000001.json").write_bytes(_evil(marker))  # a crafted manifest
    resume("is corrupt or incomplete (unreadable manifest")
    run.config_path.write_bytes(_evil(marker))
    resume("config.json is unreadable")
    assert not marker.exists()


def _crafted_sweep_run(run: Path, marker: Path) -> None:
    """A finished-looking run whose every file is hostile or junk, with one good record."""
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pkl").write_bytes(_evil(marker))
    (run / "checkpoints" / "ckpt_000001.json").write_bytes(_evil(marker))
    (run / "config.json").write_bytes(_evil(marker))
    (run / "SWEEP_DONE").write_bytes(_evil(marker))
    (run / "metrics.jsonl").write_bytes(
        _evil(marker) + b'\n[1, 2]\n"x"\n' + b'{"episode": 1, "env_steps": 10, "return": 7.0}\n'
    )


def test_sweep_reading_crafted_runs_executes_nothing(tmp_path, capsys):
    marker, out = tmp_path / "pwned", tmp_path / "sw"
    fake = str(ROOT / "tests/experiments/fake_experiment.py")
    _crafted_sweep_run(out / "runs" / "seed=0", marker)
    assert _main("sweep")([fake, "--out", str(out), "--gather-only"]) == 0
    assert "7" in capsys.readouterr().out  # the one good record is the table
    (out / "sweep.json").write_bytes(_evil(marker))
    with pytest.raises(SystemExit) as exc:
        _main("sweep")([fake, "--out", str(out), "--gather-only"])
    assert exc.value.code == 2 and "sweep.json is unreadable" in capsys.readouterr().err
    assert not marker.exists()


def test_reproduce_reading_crafted_runs_executes_nothing(tmp_path, capsys):
    marker, out = tmp_path / "pwned", tmp_path / "rep"
    _crafted_sweep_run(out / "pets-reacher" / "runs" / "seed=0", marker)
    _main("reproduce")(["pets-reacher", "--out", str(out), "--seeds", "0", "--gather-only"])
    assert "7.0" in capsys.readouterr().out
    _crafted_sweep_run(out / "dyna-maze" / "runs" / "seed=0", marker)
    _main("reproduce")(["dyna-maze", "--out", str(out), "--gather-only"])
    assert "no finished runs yet" in capsys.readouterr().out
    assert not marker.exists()
