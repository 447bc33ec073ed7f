"""The fitting loop's plumbing (prototypes/models/fitting.py): row buckets, padding, the held-out
split, minibatch draws and member-wise selection, each against a hand-worked answer."""

import jax.numpy as jnp
import numpy as np

from prototypes.models.fitting import (
    bucket_rows,
    holdout_split,
    minibatch_indices,
    pad_rows,
    select_members,
)


def test_bucket_rows_is_the_next_power_of_two_from_64():
    assert [bucket_rows(n) for n in (0, 1, 64, 65, 128, 129, 1000)] == [
        64,
        64,
        64,
        128,
        128,
        256,
        1024,
    ]


def test_pad_rows_appends_zero_rows_of_the_same_dtype():
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    out = pad_rows(x, 5)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 1], [2, 3], [4, 5], [0, 0], [0, 0]])


def test_select_members_takes_each_member_from_the_side_its_mask_names():
    new = {"w": jnp.full((3, 2, 2), 1.0), "b": jnp.array([1.0, 2.0, 3.0])}
    old = {"w": jnp.full((3, 2, 2), -1.0), "b": jnp.array([-1.0, -2.0, -3.0])}
    out = select_members(jnp.array([True, False, True]), new, old)
    np.testing.assert_array_equal(out["b"], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(out["w"][:, 0, 0], [1.0, -1.0, 1.0])
    np.testing.assert_array_equal(out["w"][1], -1.0)  # the whole member, not one entry


def test_holdout_split_partitions_the_rows():
    # 50 rows, holdout 0.2: 10 held out, padded by cycling to 64 with weight 0 on the fill
    train, hold_idx, hold_w = holdout_split(np.random.default_rng(0), 50, 0.2)
    hold = np.asarray(hold_idx)[:10]
    assert len(train) == 40 and hold_idx.shape == (64,) and float(hold_w.sum()) == 10.0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, hold])), np.arange(50))
    np.testing.assert_array_equal(np.asarray(hold_idx)[10:20], hold)  # the fill cycles
    # under 20 rows nothing is held out
    train, _, hold_w = holdout_split(np.random.default_rng(0), 19, 0.2)
    assert len(train) == 19 and float(hold_w.sum()) == 0.0


def test_minibatch_indices_without_bootstrap_cover_the_data_once_per_member():
    train = np.arange(10, 34)  # 24 rows = 3 steps x 8
    idx = minibatch_indices(np.random.default_rng(0), train, 3, 2, 8, bootstrap=False)
    assert idx.shape == (3, 2, 8)
    for e in range(2):
        np.testing.assert_array_equal(np.sort(idx[:, e].ravel()), train)
    assert not np.array_equal(idx[:, 0], idx[:, 1])  # each member its own shuffle
    boot = minibatch_indices(np.random.default_rng(0), train, 3, 2, 8, bootstrap=True)
    assert boot.shape == (3, 2, 8) and np.isin(boot, train).all()
