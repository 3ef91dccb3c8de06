"""``medprint demo OUT [--input DICOM_DIR] [--json]``: the whole pipeline, headless, step by
step."""

from __future__ import annotations

import argparse

from app.commands.output import add_json, show
from app.workflow.demo import run_demo


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="run import → bone → mesh + QA → label → approval → slicing → signed package → verify",
    )
    parser.add_argument("out", help="folder for the signed print package")
    parser.add_argument(
        "--input",
        help="a DICOM folder, drive or zip to use instead of the bundled sample (largest CT)",
    )
    add_json(parser)
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    def line(step: str, seconds: float, summary: str) -> None:
        print(f"{step:22} {seconds:7.1f} s  {summary}", flush=True)

    result = run_demo(args.out, args.input, report=None if args.json else line)
    total = sum(seconds for _, seconds, _ in result.steps)
    facts = {
        "case": result.case,
        "package": str(result.package),
        "verified": result.verified,
        "steps": [{"step": s, "seconds": round(t, 2), "summary": x} for s, t, x in result.steps],
        "seconds": round(total, 2),
    }
    show(args, facts, f"{'total':22} {total:7.1f} s  case {result.case}; package {result.package}")
    return 0
