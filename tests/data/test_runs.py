import json

import numpy as np
import pytest

from prototypes.data.runs import CheckpointError, open_run


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
