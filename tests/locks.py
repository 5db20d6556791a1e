"""Another process holding a jaxcim output-folder lock (used by tests/test_io.py and tests/test_study_safety.py)."""

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
