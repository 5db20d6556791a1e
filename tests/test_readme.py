"""The README works as written: every command line of its ``bash`` code blocks, and its Python example, run in a
fresh temporary folder within a time limit. A README that drifts from the code fails here (about 2 minutes for the
command lines and 1.5 for the example on one core).

Lines are run as written (``jaxcim ...`` through the console script's function `jaxcim.cli.main`, in one
interpreter), except those listed in `EXCLUDED` (each with its reason): package installs, the whole test suite,
commands that need several processes, and the Pareto search (minutes).
"""

import re
import shlex
import subprocess
import time
from pathlib import Path

from jaxcim import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIME_LIMIT_S = 600
"""Most seconds the README's command lines may take together (a bound against hangs: about 2 minutes of CPU)."""

EXCLUDED = {
    "pip install": "installs packages: CI installs jaxcim and its extras before the tests",
    "pytest": "runs the whole test suite, which includes this test",
    "--num-processes": "starts one of several cooperating processes: multi-process library runs are tested with real "
                       "processes by the tests of jaxcim.distributed",
    "jaxcim pareto": "about 5 minutes of CPU (a grid of chip Monte Carlo runs); tests/test_energy.py runs the "
                     "command on a tiny grid",
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


def run_line(line: str, cwd: Path) -> None:
    """Run one README command line in ``cwd``: a plain ``jaxcim ...`` command through `jaxcim.cli.main` (what the
    ``jaxcim`` console script calls: the lines share one interpreter and its compilations), anything else with
    bash."""
    args = shlex.split(line, comments=True)
    if args and args[0] == "jaxcim" and not set(args) & {"&", "&&", "|", ";", ">", "<"}:
        try:
            status = cli.main(args[1:])
        except SystemExit as e:  # --version, --help
            status = e.code
        assert status == 0, f"{line!r} exited with status {status}"
        return
    proc = subprocess.run(["bash", "-ec", line], cwd=cwd, capture_output=True, text=True, timeout=TIME_LIMIT_S)
    assert proc.returncode == 0, f"{line!r}: {proc.stderr[-3000:]}"


def test_every_command_line_of_the_readme_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    t0 = time.perf_counter()
    for line in shell_lines():
        run_line(line, tmp_path)
        assert time.perf_counter() - t0 < TIME_LIMIT_S, f"the README's command lines take over {TIME_LIMIT_S} s"
    assert (tmp_path / "jaxcim-results" / "results.json").is_file()  # the quick start's default study
    assert (tmp_path / "jaxcim-results" / "accuracy_vs_time.png").is_file()
    assert (tmp_path / "runs" / "mvm-learned" / "results.json").is_file()  # optimize -> run --mapping
    assert (tmp_path / "runs" / "sweep" / "sweep.png").is_file()


PYTHON_TIME_LIMIT_S = 300
"""Most seconds the README's Python example may take (it says "about a minute of CPU time")."""


def test_the_python_example_runs(tmp_path, monkeypatch):
    """(``pytest -m extended``: 1-1.5 min.) The README's first Python block runs as written and its comments hold:
    the Monte Carlo shape it states, errors near the ideal product, and the mapping and config it builds."""
    (example,) = code_blocks("python")[:1]
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    scope: dict = {}
    exec(compile(example, "README.md (python example)", "exec"), scope)  # noqa: S102 - the README is ours
    assert time.perf_counter() - t0 < PYTHON_TIME_LIMIT_S
    ideal = scope["x"] @ scope["w"]
    assert scope["ys"].shape == (64, 64, 256)  # "(64, 64, 256)" in the comment
    # "y ~ x @ w": the analog result tracks the ideal one (NeuRRAM noise: a few percent of the output range)
    rel = float(abs(scope["ys"].mean(0) - ideal).mean() / abs(ideal).mean())
    assert rel < 0.2, rel
    assert scope["i"].shape == (64, 256)  # "(64, 256) A"
    assert scope["cfg_ir"].circuit.kind == "ir_drop"
    assert scope["cfg"].device is not None
