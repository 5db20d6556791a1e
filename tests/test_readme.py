"""The README works as written: every command line of its ``bash`` code blocks runs, in a fresh temporary folder,
within a time limit, and so does its Python example. A README that drifts from the code fails here.

Lines are run as written, except those listed in `EXCLUDED` (each with its reason): package installs, the whole
test suite, commands that need several processes or a study file of the reader's own.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIME_LIMIT_S = 600
"""Most seconds one code block may take (the whole README runs in about a minute on a 2-core CPU)."""

EXCLUDED = {
    "pip install": "installs packages: CI installs jaxcim and its extras before the tests",
    "pytest": "runs the whole test suite, which includes this test",
    "--num-processes": "starts one of several cooperating processes: multi-process runs are tested with real "
                       "processes by the tests of jaxcim.distributed",
    "export JAX_CPU_COLLECTIVES_IMPLEMENTATION": "belongs to the multi-process commands",
    "study.toml": "names a study file of the reader's own",
}
"""Line fragments of README commands that this test does not run, and why."""


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def shell_lines() -> list[str]:
    """The command lines of the README's bash blocks that run here (comments stripped, `EXCLUDED` left out)."""
    lines = []
    for block in code_blocks("bash"):
        for line in block.splitlines():
            if line.strip() and not any(frag in line for frag in EXCLUDED):
                lines.append(line)
    return lines


def test_the_readme_lists_what_it_does_not_run():
    """Each exclusion still matches a README line (a stale one would hide nothing and must go)."""
    text = "\n".join(code_blocks("bash"))
    assert all(frag in text for frag in EXCLUDED), [f for f in EXCLUDED if f not in text]
    assert len(shell_lines()) >= 6


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """PATH with a ``jaxcim`` that runs this checkout's code with this interpreter; the checkout on PYTHONPATH."""
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "jaxcim"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m jaxcim.cli "$@"\n')
    shim.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", MPLBACKEND="Agg")


@pytest.mark.slow
def test_every_command_line_of_the_readme_runs(tmp_path, env):
    script = "set -e\n" + "\n".join(shell_lines()) + "\n"
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIME_LIMIT_S)
    assert proc.returncode == 0, f"{script}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert (tmp_path / "jaxcim-results" / "results.json").is_file()  # the quick start's default study
    assert (tmp_path / "runs" / "mvm-learned" / "results.json").is_file()  # optimize -> run --mapping
    assert (tmp_path / "runs" / "sweep" / "sweep.json").is_file()


@pytest.mark.slow
def test_the_python_example_runs(tmp_path, env):
    (block,) = code_blocks("python")[:1]
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(block)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIME_LIMIT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
