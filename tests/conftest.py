"""Test setup: 8 forced CPU devices (so sharding is exercised on every machine) and shared fixtures.

float64 tests use the ``jax.enable_x64(True)`` context manager locally; the default stays float32.

XLA's persistent compilation cache is on for the suite (and the notebook kernels it starts, which inherit the
environment): many tests build fresh jitted closures of the same programs, and the xdist workers compile some of
the same ones. A cached executable is the same compiled code, so no number changes; the size limit turns on JAX's
file lock, which serializes the workers' reads and writes of the cache folder.
"""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_CACHE = os.path.join(tempfile.gettempdir(), f"jaxcim-tests-xla-{os.getuid()}")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def key():
    return jax.random.key(0)
