"""jaxcim's energy estimate next to published compute-in-memory macros.

Prints a table (published TOPS/W, jaxcim TOPS/W, ratio, accepted band, TOPS/W without the cell-current term,
energy shares) with the explanation of every gap larger than 2x, and writes benchmarks/results/energy_validation.json.

    python benchmarks/energy_validation.py
"""

from __future__ import annotations

import json
import platform
import textwrap
from pathlib import Path

import jax

from jaxcim.energy import macros


def main() -> None:
    rows = macros.validate()
    head = (f"{'macro':<22}{'published':>10}{'jaxcim':>10}{'ratio':>8}{'band':>14}{'no-array':>10}"
            "  shares dac/array/adc/dig")
    print(head)
    print("-" * len(head))
    for r in rows:
        band = f"[{r['band'][0]:g}, {r['band'][1]:g}]"
        shares = "/".join(f"{100 * v:.0f}" for v in r["shares"].values())
        print(f"{r['name']:<22}{r['published']:>10.3g}{r['jaxcim']:>10.3g}{r['ratio']:>8.2f}{band:>14}"
              f"{r['jaxcim_no_array']:>10.3g}  {shares} %  {'ok' if r['within'] else 'OUT OF BAND'}")
    print()
    for r in rows:
        if r["note"]:
            print(f"{r['name']} ({r['source']}):")
            print(textwrap.indent(textwrap.fill(r["note"], 110), "  "))
    out = Path(__file__).parent / "results" / "energy_validation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(device=str(jax.devices()[0]), jax=jax.__version__, python=platform.python_version())
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2, default=list))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
