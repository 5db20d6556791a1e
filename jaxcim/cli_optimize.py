"""``jaxcim optimize``: arguments of the mapping optimization study (`jaxcim.studies.optimize`, wired into
`jaxcim.cli`).

    jaxcim optimize mvm --out maps && jaxcim run mvm --mapping maps/neurram-256x256_mapping
"""

from __future__ import annotations

import argparse
import json
import sys

from jaxcim.studies.optimize import OPTIMIZE_KEYS  # noqa: F401 - the keys of [optimize], documented there


def add_optimize_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcim.cli import DEFAULT_OUT, add_distributed_arguments

    parser.add_argument("study", nargs="?", help="mvm study TOML (as for jaxcim run) with an [optimize] table, or "
                        "a shipped study name (default: mvm)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder of the mapping, <name>_mapping.npz/.json "
                        f"(default {DEFAULT_OUT})")
    parser.add_argument("-o", "--output", help="mapping file stem instead (writes STEM.npz and STEM.json); "
                        "default [optimize].output, else <out>/<name>_mapping")
    parser.add_argument("--steps", type=int, help="override [optimize].steps")
    parser.add_argument("--n-instances", type=int, help="override [optimize].n_instances")
    parser.add_argument("--seed", type=int, help="override [optimize].seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_distributed_arguments(parser)


def optimize_command(args: argparse.Namespace) -> int:
    """Learn a mapping for a study, write it, print the before/after errors; returns the exit status."""
    from jaxcim import distributed
    from jaxcim.cli import init_distributed
    from jaxcim.io import StudyError
    from jaxcim.studies import optimize as opt

    try:
        init_distributed(args)
        cfg, w, x, opts = opt.load_optimize_study(args.study)
        opts.update({k: getattr(args, k) for k in ("steps", "n_instances", "seed") if getattr(args, k, None)
                     is not None})
        stem = opt.output_stem(opts, getattr(args, "output", None), getattr(args, "out", "jaxcim-results"))
        result, summary = opt.run_optimize(cfg, w, x, opts, progress=not args.no_progress)
        if not distributed.is_primary():
            return 0
        summary = {"study": str(args.study or "mvm"), **summary}
        npz, meta = opt.save(stem, result, summary)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary["mapping"] = [str(npz), str(meta)]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(opt.table(summary))
        print(f"mapping written to {npz} and {meta}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m jaxcim.cli_optimize study.toml``; usually ``jaxcim optimize``)."""
    parser = argparse.ArgumentParser(prog="jaxcim optimize", description=__doc__.splitlines()[0])
    add_optimize_arguments(parser)
    return optimize_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
