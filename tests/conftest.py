"""Suite-wide settings: implicit rank promotion is an error (STYLE.md section 5); compiled XLA
programs are shared between tests through a persistent compilation cache in a fresh temporary
directory per session (many tests build the same tiny planner and model, and compiling them is
most of their time; the xdist workers and the subprocesses tests start inherit it through the
environment)."""

import atexit
import functools
import os
import shutil
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="pmbrl-tests-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(functools.partial(shutil.rmtree, _cache, ignore_errors=True))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# the suite runs on two workers (pyproject.toml); on a GPU neither may take most of its memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield
