"""A fixed-capacity FIFO replay buffer as a pytree, with pure `add` and `sample`.

The buffer is a `ReplayState` of preallocated arrays; `add` writes a batch at the write pointer,
wrapping around and overwriting the oldest entries once full (exact FIFO). `add` is
jitted (one compile per batch shape); `contents` is host-side NumPy because its output length is
the fill level.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prototypes.types import Array, Int, PRNGKey, Transition

__all__ = ["ReplayState", "zero_transition", "init", "add", "sample", "contents"]


@struct.dataclass
class ReplayState:
    """Ring-buffer storage.

    Attributes:
        data: a `Transition` whose leaves have leading dim [capacity].
        ptr: int32 [], the index the next added item is written to.
        size: int32 [], the number of valid items (<= capacity).
    """

    data: Transition
    ptr: Int[Array, ""]
    size: Int[Array, ""]

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def zero_transition(obs_dim: int, act_dim: int) -> Transition:
    """One unbatched all-zero transition of a task's shapes (float32 obs and action, scalar
    float32 reward, bool done): the `example` that `init` and a model's init take."""
    return Transition(
        obs=jnp.zeros(obs_dim, jnp.float32),
        action=jnp.zeros(act_dim, jnp.float32),
        reward=jnp.zeros((), jnp.float32),
        next_obs=jnp.zeros(obs_dim, jnp.float32),
        done=jnp.zeros((), bool),
    )


def init(example: Transition, capacity: int) -> ReplayState:
    """An empty buffer whose items have the shapes and dtypes of one unbatched `example`."""
    if capacity <= 0:
        raise ValueError(f"replay capacity must be positive, got {capacity}")
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example
    )
    return ReplayState(data=data, ptr=jnp.int32(0), size=jnp.int32(0))


@jax.jit
def add(buf: ReplayState, batch: Transition) -> ReplayState:
    """Append a batch (leading dim n) in order; once full, the oldest items are overwritten."""
    n = jax.tree.leaves(batch)[0].shape[0]
    cap = buf.capacity
    if n > cap:  # only the newest `cap` items of the batch survive, as in n single adds
        batch = jax.tree.map(lambda x: x[n - cap :], batch)
        buf = buf.replace(ptr=(buf.ptr + n - cap) % cap)
        n = cap
    idx = (buf.ptr + jnp.arange(n, dtype=jnp.int32)) % cap
    data = jax.tree.map(lambda store, x: store.at[idx].set(x.astype(store.dtype)), buf.data, batch)
    return ReplayState(data=data, ptr=(buf.ptr + n) % cap, size=jnp.minimum(buf.size + n, cap))


def sample(buf: ReplayState, key: PRNGKey, n: int) -> Transition:
    """n items drawn uniformly with replacement from the valid ones. The key is consumed."""
    idx = jax.random.randint(key, (n,), 0, jnp.maximum(buf.size, 1))
    return jax.tree.map(lambda x: x[idx], buf.data)


def contents(buf: ReplayState) -> Transition:
    """All valid items as NumPy arrays, oldest first (host-side: the length is the fill level)."""
    size, ptr, cap = int(buf.size), int(buf.ptr), buf.capacity
    start = ptr if size == cap else 0
    order = (start + np.arange(size)) % cap
    return jax.tree.map(lambda x: np.asarray(x)[order], buf.data)
