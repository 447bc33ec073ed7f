import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.data import replay
from prototypes.types import Transition


def _batch(start: int, n: int) -> Transition:
    ids = jnp.arange(start, start + n, dtype=jnp.float32)
    return Transition(
        obs=ids[:, None] * jnp.ones((1, 3)),
        action=ids[:, None],
        reward=ids,
        next_obs=ids[:, None] + jnp.ones((1, 3)),
        done=ids > 1e9,
    )


def _example() -> Transition:
    return jax.tree.map(lambda x: x[0], _batch(0, 1))


def test_fifo_order_and_overwrite():
    buf = replay.init(_example(), capacity=5)
    buf = replay.add(buf, _batch(0, 3))  # items 0, 1, 2
    assert int(buf.size) == 3
    np.testing.assert_array_equal(replay.contents(buf).reward, [0, 1, 2])
    buf = replay.add(buf, _batch(3, 4))  # 3..6; 0 and 1 are overwritten, oldest first
    assert int(buf.size) == 5 and int(buf.ptr) == 2
    np.testing.assert_array_equal(replay.contents(buf).reward, [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(replay.contents(buf).obs[:, 0], [2, 3, 4, 5, 6])


def test_batch_larger_than_capacity_equals_single_adds():
    big = replay.add(replay.init(_example(), 4), _batch(0, 11))
    single = replay.init(_example(), 4)
    for i in range(11):
        single = replay.add(single, _batch(i, 1))
    np.testing.assert_array_equal(replay.contents(big).reward, replay.contents(single).reward)
    np.testing.assert_array_equal(replay.contents(big).reward, [7, 8, 9, 10])
    assert int(big.ptr) == int(single.ptr)


def test_sample_draws_only_valid_items_and_is_keyed():
    buf = replay.add(replay.init(_example(), 100), _batch(10, 6))  # valid rewards 10..15
    s1 = replay.sample(buf, jax.random.key(0), 500)
    s2 = replay.sample(buf, jax.random.key(0), 500)
    s3 = replay.sample(buf, jax.random.key(1), 500)
    assert set(np.asarray(s1.reward).tolist()) == set(range(10, 16))
    np.testing.assert_array_equal(s1.reward, s2.reward)
    assert not np.array_equal(s1.reward, s3.reward)
    # fields stay aligned row by row
    np.testing.assert_array_equal(s1.obs[:, 0], s1.reward)


def test_bad_capacity():
    with pytest.raises(ValueError, match="capacity must be positive"):
        replay.init(_example(), 0)
