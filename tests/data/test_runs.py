import json

import numpy as np
import pytest

from prototypes.data.runs import CheckpointError, episode_seed, open_run


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


def test_metrics_append_and_truncate(tmp_path):
    run = open_run(tmp_path / "r", {}, resume=False)
    for i in range(4):
        run.log({"episode": i, "value": np.float32(i) / 2})
    with open(run.metrics_path, "a") as f:
        f.write('{"episode": 4, "val')  # a torn line from a crash is skipped
    assert [r["episode"] for r in run.metrics()] == [0, 1, 2, 3]
    run.truncate_metrics(2)
    assert run.metrics() == [{"episode": 0, "value": 0.0}, {"episode": 1, "value": 0.5}]


def test_checkpoint_roundtrip_and_corruption(tmp_path):
    run = open_run(tmp_path / "r", {}, resume=False)
    run.save_checkpoint({"a": np.arange(3), "step": 5})
    back = run.load_checkpoint()
    np.testing.assert_array_equal(back["a"], [0, 1, 2])
    assert back["step"] == 5
    assert not list(run.checkpoint_path.parent.glob("*.tmp"))  # the temp file was renamed away
    run.checkpoint_path.write_bytes(b"\x80\x05garbage")
    with pytest.raises(CheckpointError, match="is corrupt"):
        run.load_checkpoint()


def test_load_state_checks_the_structure(tmp_path):
    import jax.numpy as jnp

    run = open_run(tmp_path / "r", {}, resume=False)
    state = {"w": jnp.arange(3.0), "step": jnp.int32(2)}
    run.save_checkpoint({"state": state})
    back = run.load_state(like=state)
    np.testing.assert_array_equal(back["w"], [0.0, 1.0, 2.0])
    assert int(back["step"]) == 2
    with pytest.raises(CheckpointError, match="does not match this config"):
        run.load_state(like={"w": jnp.zeros(3)})
    run.save_checkpoint([1, 2])  # not the {"state": ...} layout
    with pytest.raises(CheckpointError, match="does not match this config"):
        run.load_state(like=state)


def test_perf_log_and_episode_seeds(tmp_path):
    run = open_run(tmp_path / "r", {}, resume=False)
    run.log_perf({"episode": 1, "seconds": np.float32(0.5)})
    assert json.loads(run.perf_path.read_text()) == {"episode": 1, "seconds": 0.5}
    assert not run.metrics()  # timings stay out of the deterministic metrics
    # seed * 1_000_003 + episode, modulo 2^31 - 1
    assert episode_seed(0, 5) == 5 and episode_seed(2, 1) == 2_000_007
    assert len({episode_seed(s, e) for s in range(3) for e in range(100)}) == 300
