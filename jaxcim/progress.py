"""Progress of long jobs (studies, sweeps, network evaluation) and readable durations.

`Progress` shows a tqdm bar on a terminal and plain ``k/N (p%), rate, ETA`` lines otherwise (logs, CI), so a
long run says how far it is and when it will end.
"""

from __future__ import annotations

import sys
import time

YEAR_S = 365.25 * 86400.0
"""A Julian year, s (the "1 year" read time of the studies)."""

TIME_UNITS = (("y", YEAR_S), ("d", 86400.0), ("h", 3600.0), ("min", 60.0))


def format_time(t: float) -> str:
    """Seconds as a short readable duration: 1 s, 1 h, 2 d, 1 y."""
    for unit, s in TIME_UNITS:
        if t >= s:
            return f"{t / s:.3g} {unit}"
    return f"{t:.3g} s"


class Progress:
    """A tqdm bar on a terminal; plain lines ``desc k/N (p%), rate, ETA`` (every 5 s and at the end) otherwise.

    Args:
      total: the number of items (instances, configurations).
      done: items already done (a resumed run).
      desc: what is counted ("instances", "configurations").
      stream: where to write (default stderr).
      unit: the unit of the rate (default the first letters of ``desc``).
    """

    def __init__(self, total: int, done: int = 0, desc: str = "instances", stream=None, unit: str | None = None):
        self.total, self.done, self.start_done = total, done, done
        self.desc, self.unit = desc, unit or desc[:4]
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, desc=desc, unit=self.unit, file=self.stream)
            except ImportError:
                pass

    def update(self, k: int) -> None:
        """Count ``k`` more items done."""
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
            return
        now = time.perf_counter()
        if now - self.last >= 5.0 or self.done >= self.total:
            self.last = now
            rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"{self.desc} {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), {rate:.1f} "
                  f"{self.unit}/s, ETA {eta:.0f} s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


__all__ = ["Progress", "TIME_UNITS", "YEAR_S", "format_time"]
