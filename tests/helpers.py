"""Shared test helpers: a small classifier study, and another process holding a jaxcim output-folder lock."""

import os
import re
import subprocess
import sys


def hold_lock(path):
    """A subprocess holding an flock on ``path`` (stands for another jaxcim run) until killed."""
    code = ("import fcntl, os, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def classifier_study(head: str) -> str:
    """A small classifier study (64x64 arrays, a 64-16-10 MLP, a few epochs) with ``head`` keys on top, as TOML."""
    return 'study = "classifier"\n' + head + """
times = [1.0, 86400.0]
[crossbar]
preset = "reram-neurram"
[crossbar.mapping]
rows = 64
cols = 64
[model]
features = [64, 16, 10]
[train]
epochs = 3
[hwa]
epochs = 1
"""


def xla_flags(devices: int) -> str:
    """This process's XLA_FLAGS (the suite's compiler options) with ``devices`` forced CPU devices instead of 8,
    for worker processes whose results are compared bit for bit with this one's."""
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
    return f"{flags.strip()} --xla_force_host_platform_device_count={devices}".strip()
