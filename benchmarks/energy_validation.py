"""jaxcim's energy estimate next to published compute-in-memory macros.

Prints one table (status, node, published TOPS/W, jaxcim TOPS/W, ratio, inside the one 0.5x-2x band, TOPS/W in
NeuroSim's convention without the cell Joule term, energy shares), the held-out macros apart, the published
throughputs next to jaxcim's, the macros whose figures could not be checked, where the gap of each macro outside
the band sits (and any other row's notes), and each macro's assumptions; writes
benchmarks/results/energy_validation.json.

    python benchmarks/energy_validation.py
"""

from __future__ import annotations

import json
import platform
import textwrap
from pathlib import Path

import jax

from jaxcim.energy import ENERGY_ITEMS, macros


def _table(rows, title):
    print(title)
    head = (f"{'macro':<26}{'node':>6}{'published':>12}{'jaxcim':>9}{'ratio':>7}{'in band':>9}{'no-cell':>9}"
            f"  shares {'/'.join(ENERGY_ITEMS)} (%)")
    print(head)
    print("-" * len(head))
    for r in rows:
        pub = f"{r['published']:.3g}" if r["published"] else "{:g}-{:g}".format(*r["published_range"])
        shares = "/".join(f"{100 * v:.0f}" for v in r["shares"].values())
        print(f"{r['name']:<26}{r['node_nm']:>5.0f}n{pub:>12}{r['jaxcim']:>9.3g}{r['ratio']:>7.2f}"
              f"{'yes' if r['within'] else 'NO':>9}{r['jaxcim_no_cell_joule']:>9.3g}  {shares}")
    print()


def main() -> None:
    rows = macros.validate(include_unverified=True)
    checked = [r for r in rows if r["status"] != "not verified"]
    _table([r for r in checked if r["status"] != "held-out"], "fitted macros and the NeuroSim convention check")
    _table([r for r in checked if r["status"] == "held-out"],
           "held-out macros (named before their figures were read) and macros added after the fit")
    for r in checked:
        if r["published_tops"]:
            print(f"throughput, {r['name']}: jaxcim {r['jaxcim_tops']:.3g} TOPS, published {r['published_tops']:.3g} "
                  f"({r['tops_ratio']:.2f}x, {'inside' if r['tops_within'] else 'OUTSIDE'} the band)")
    print()
    print("listed, figure not verified here (no fit, no test):", ", ".join(r["name"] for r in rows
                                                                           if r["status"] == "not verified"))
    print()
    for r in checked:
        if not r["within"]:
            print(f"outside the band: {r['name']}: largest item {r['dominant']} "
                  f"({100 * r['shares'][r['dominant']]:.0f} %), without it {r['ratio_without_dominant']:.2f}x")
            print(textwrap.indent(textwrap.fill(r["notes"], 110), "  "))
        elif r["notes"]:
            print(f"note on {r['name']}:")
            print(textwrap.indent(textwrap.fill(r["notes"], 110), "  "))
    print()
    for r in checked:
        print(f"{r['name']} ({r['source']}):")
        print(textwrap.indent(textwrap.fill(r["assumptions"], 110), "  "))
    out = Path(__file__).parent / "results" / "energy_validation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(device=str(jax.devices()[0]), jax=jax.__version__, python=platform.python_version())
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2, default=list))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
