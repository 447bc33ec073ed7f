"""Per-dimension standardisation statistics, fitted on data and stored in the model state."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from prototypes.types import Array, Float

__all__ = ["Normalizer", "fit_normalizer"]

_MIN_STD = 1e-6


@struct.dataclass
class Normalizer:
    """mean and std [D]; dimensions that never vary get std 1 so they pass through unscaled."""

    mean: Float[Array, " D"]
    std: Float[Array, " D"]

    def normalize(self, x: Float[Array, "... D"]) -> Float[Array, "... D"]:
        return (x - jnp.broadcast_to(self.mean, x.shape)) / jnp.broadcast_to(self.std, x.shape)

    def denormalize(self, z: Float[Array, "... D"]) -> Float[Array, "... D"]:
        return z * jnp.broadcast_to(self.std, z.shape) + jnp.broadcast_to(self.mean, z.shape)

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        return cls(mean=jnp.zeros(dim, jnp.float32), std=jnp.ones(dim, jnp.float32))


def fit_normalizer(x: Float[Array, "N D"]) -> Normalizer:
    """Statistics of a dataset (N >= 1)."""
    mean = jnp.mean(x, axis=0)
    std = jnp.std(x, axis=0)
    std = jnp.where(std < _MIN_STD, 1.0, std)
    return Normalizer(mean=mean.astype(jnp.float32), std=std.astype(jnp.float32))
