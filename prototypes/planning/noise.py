"""Gaussian noise with a 1/f^beta power spectrum over time, for sampling action sequences.

iCEM (Pinneri et al. 2020) samples CEM candidates with colored noise: beta = 0 is white noise
(plain CEM), larger beta puts more power in low frequencies, so sampled sequences are smoother
and explore further, which the paper found to cut the samples needed on manipulation tasks
(beta about 2-2.5).

Construction, for a sequence of length T: draw independent Gaussian real and imaginary parts
for the rfft bins k = 0 .. T//2, with variance T * S_k / 2 per part (T * S_k for the purely real
DC bin, and for the Nyquist bin when T is even), where S_k = f_k^-beta is the target power
spectrum at f_k = k / T (the DC bin uses f = 1 / T, so beta > 0 stays finite); the inverse rfft
is then a stationary Gaussian sequence whose circular autocovariance is
    c(l) = (1 / T) * sum_k S_k cos(2 pi k l / T)     (k over all T bins, S_{T-k} = S_k),
with variance c(0) = (S_0 + 2 sum_{0<k<T/2} S_k + S_{T/2}) / T. Dividing by sqrt(c(0)) gives
unit variance at every step; with beta = 0 every S_k = 1, c(l) is 1 at l = 0 and 0 elsewhere:
white noise. tests/planning/test_noise.py checks both against this formula exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prototypes.types import Array, Float, PRNGKey

__all__ = ["power_spectrum", "colored_from_normals", "colored_noise"]


def power_spectrum(T: int, beta: float) -> np.ndarray:
    """S_k = f_k^-beta for the rfft bins k = 0 .. T//2 (f_0 taken as 1 / T), [T//2 + 1]."""
    f = np.fft.rfftfreq(T)
    f[0] = 1.0 / T
    return f ** (-beta)


def colored_from_normals(
    z_re: Float[Array, "... K"], z_im: Float[Array, "... K"], beta: float, T: int
) -> Float[Array, "... T"]:
    """The colored sequence [..., T] made from standard normal draws for the real and imaginary
    parts of the K = T//2 + 1 rfft bins (a linear map; the module docstring derives it)."""
    S = power_spectrum(T, beta)
    real_only = np.zeros(S.shape, bool)
    real_only[0] = True
    if T % 2 == 0:
        real_only[-1] = True
    var = np.where(real_only, T * S, 0.5 * T * S)  # per real / imaginary part
    lead = (1,) * (z_re.ndim - 1)
    std_re = np.sqrt(var).reshape(lead + S.shape)
    std_im = np.where(real_only, 0.0, np.sqrt(var)).reshape(lead + S.shape)
    c0 = (S[0] + 2 * S[1 : (T + 1) // 2].sum() + (S[-1] if T % 2 == 0 else 0.0)) / T
    return jnp.fft.irfft(z_re * std_re + 1j * (z_im * std_im), n=T, axis=-1) / np.sqrt(c0)


def colored_noise(key: PRNGKey, beta: float, shape: tuple[int, ...]) -> Float[Array, "... T"]:
    """Unit-variance Gaussian noise with power spectrum 1/f^beta along the last axis of `shape`
    (the time axis, length T); leading axes are independent. The key is consumed."""
    T = shape[-1]
    key_re, key_im = jax.random.split(key)
    spec_shape = shape[:-1] + (T // 2 + 1,)
    z_re, z_im = jax.random.normal(key_re, spec_shape), jax.random.normal(key_im, spec_shape)
    return colored_from_normals(z_re, z_im, beta, T)
