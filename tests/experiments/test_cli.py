"""experiments/cli.py: the progress bar and the plot throttle the experiment scripts share."""

import pytest

from experiments.cli import Throttle, progress_bar


def test_silent_bar_takes_every_call():
    bar = progress_bar(10, 0, enabled=False, desc="x")
    bar.update(1), bar.set_postfix(a=1), bar.set_description("y"), bar.close()


def test_throttle_is_due_once_per_interval_and_when_forced():
    now = [0.0]
    due = Throttle(10.0, clock=lambda: now[0]).due
    assert due()  # the first call is always due
    now[0] = 9.0
    assert not due()
    assert due(force=True)  # forcing resets the interval: the next is due at 19
    now[0] = 18.0
    assert not due()
    now[0] = 19.0
    assert due()
    with pytest.raises(ValueError, match="-1"):
        Throttle(-1.0)


def test_write_results_row_replaces_the_same_run_and_keeps_order(tmp_path):
    from experiments.cli import write_results_row

    path = tmp_path / "results" / "r.csv"
    write_results_row(path, {"run": "b", "seed": 1, "last10_return": -4.5})
    write_results_row(path, {"run": "a", "seed": 0, "last10_return": -3.25})
    write_results_row(path, {"run": "b", "seed": 1, "last10_return": -4.0})  # rerun of b
    assert path.read_text().splitlines() == [
        "run,seed,last10_return",
        "a,0,-3.25",
        "b,1,-4.0",
    ]
