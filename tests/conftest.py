"""Test setup: 8 forced CPU devices (so sharding is exercised on every machine) and shared fixtures.

float64 tests use the ``jax.enable_x64(True)`` context manager locally; the default stays float32.

The suite compiles with LLVM's optimization level 0 (``--xla_backend_optimization_level=0``): XLA's own graph
optimizations (fusion, layout, algebraic simplification) still run, only the machine-code optimization of each
fused kernel is skipped, which halves compile time, most of the suite's time (tests/test_core.py: 85 s -> 52 s on 2
cores). Results stay IEEE float32/float64; worker processes of tests that compare bit for bit get the same flags
(`helpers.xla_flags`). Set XLA_FLAGS yourself to test with other options.

XLA's persistent compilation cache is on for the suite (and the notebook kernels it starts, which inherit the
environment): many tests build fresh jitted closures of the same programs, and the xdist workers compile some of
the same ones. A cached executable is the same compiled code, so no number changes; the size limit turns on JAX's
file lock, which serializes the workers' reads and writes of the cache folder.
"""

import os
import tempfile

if "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
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


SLOW_NOTEBOOKS = ("analog_nn.ipynb", "ir_drop.ipynb", "tour.ipynb", "optimize_mapping.ipynb", "energy.ipynb",
                  "calibrate.ipynb", "torch_import.ipynb")
"""Notebooks run by ``pytest -m extended`` only (1-2.5 min each on 2 cores): their steps are tested by the modules of
tests/ (test_calibrate, test_import for the calibrate and torch_import notebooks)."""

EXTENDED_TESTS = (
    "tests/test_readme.py::test_the_python_example_runs",
    "tests/test_montecarlo.py::test_programs_in_stages_match_the_fused_program",
    "tests/test_ir_drop.py::test_gradients_match_finite_differences[shape2-0.3]",
    "tests/test_device_models.py::test_users_model_everywhere",
    "tests/test_rng.py::test_normals_pairs_same_shapes_only",
    "tests/test_energy.py::test_jit_vmap_grad",
    # 20-60 s each; the default run keeps a cheaper test of the same code (in brackets)
    "tests/test_multiprocess_cli.py::test_classifier_study_over_two_processes_is_one_process",  # (mvm study, 2 procs)
    "tests/test_multiprocess.py::test_processes_equal_one_process_bit_for_bit[4]",  # ([2])
    "tests/test_cli.py::test_classifier_kill_and_resume_gives_the_uninterrupted_results",  # (mvm kill and resume)
    "tests/test_cli.py::test_classifier_study_through_the_cli",  # (the README's `jaxcim run` lines)
    "tests/test_gradients.py::test_drift_gradient_matches_finite_differences",  # (expected loss, PCM at 1 day)
    "tests/test_gradients.py::test_quantizer_gradients_are_straight_through",  # (core: finite through quantizers)
    "tests/test_gradients.py::test_write_verify_gradient_is_that_of_the_accepted_write",  # (programming gradients)
    "tests/test_gradients.py::test_ir_drop_gradient_matches_finite_differences",  # (IR-drop module's own)
    "tests/test_gradients.py::test_expected_loss_gradient_matches_finite_differences[reram-neurram-changes1-3600.0]",
    "tests/test_gradients.py::test_gradient_variance_falls_as_one_over_instances",  # (expected loss gradients)
    "tests/test_ir_drop.py::test_float32_accuracy_normalized",  # (float32 against ngspice)
    "tests/test_ir_drop.py::test_vmap_over_instances_inputs_and_wires",  # (jit equals eager; batched inputs)
    "tests/test_robustness.py::test_ir_drop_monte_carlo_returns_for_every_chunk_size",  # (engine chunking tests)
    "tests/test_rng.py::test_keyed_reproducible_and_batching_invariant",  # (rng neighbours and keys)
    "tests/test_rng.py::test_float64_resolution_reaches_further_tails",  # (same)
)
"""Tests run by ``pytest -m extended`` only, to keep the default run inside CI's 20 minutes on 2 cores; cheaper
tests in the default run cover the same code (the README's command lines, the engine's stage tests, the smaller
IR-drop gradient shapes, the custom-device tests, the other rng tests, each energy function's own jit/grad test,
and the ones named in brackets above)."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_NOTEBOOKS or item.nodeid in EXTENDED_TESTS:
            item.add_marker(pytest.mark.extended)
