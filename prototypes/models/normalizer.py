"""Per-dimension standardisation statistics, fitted on data and stored in the model state."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct

from prototypes.types import Array, Bool, Float

__all__ = ["Normalizer", "fit_normalizer"]

_MIN_STD = 1e-6


@struct.dataclass
class Normalizer:
    """mean and std [D]. Dimensions that never varied in the data get std 1 (so normalising
    them is harmless) and are flagged `constant`: a model predicts them as exactly their mean."""

    mean: Float[Array, " D"]
    std: Float[Array, " D"]
    constant: Bool[Array, " D"]

    def normalize(self, x: Float[Array, "... D"]) -> Float[Array, "... D"]:
        return (x - jnp.broadcast_to(self.mean, x.shape)) / jnp.broadcast_to(self.std, x.shape)

    def denormalize(self, z: Float[Array, "... D"]) -> Float[Array, "... D"]:
        return z * jnp.broadcast_to(self.std, z.shape) + jnp.broadcast_to(self.mean, z.shape)

    def denormalize_or_mean(self, z: Float[Array, "... D"]) -> Float[Array, "... D"]:
        """Like `denormalize`, but constant dimensions are set to their mean exactly."""
        return jnp.where(
            jnp.broadcast_to(self.constant, z.shape),
            jnp.broadcast_to(self.mean, z.shape),
            self.denormalize(z),
        )

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        return cls(
            mean=jnp.zeros(dim, jnp.float32),
            std=jnp.ones(dim, jnp.float32),
            constant=jnp.zeros(dim, bool),
        )


def fit_normalizer(x: Float[np.ndarray, "N D"]) -> Normalizer:
    """Statistics of a dataset (N >= 1), computed on the host in float64."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    constant = std < _MIN_STD
    return Normalizer(
        mean=jnp.asarray(mean, jnp.float32),
        std=jnp.asarray(np.where(constant, 1.0, std), jnp.float32),
        constant=jnp.asarray(constant),
    )
