"""``medprint demo OUT [--input DICOM_DIR]``: the whole pipeline, headless, step by step."""

from __future__ import annotations

import argparse

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
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    def show(step: str, seconds: float, summary: str) -> None:
        print(f"{step:22} {seconds:7.1f} s  {summary}", flush=True)

    result = run_demo(args.out, args.input, report=show)
    total = sum(seconds for _, seconds, _ in result.steps)
    print(f"{'total':22} {total:7.1f} s  case {result.case}; package {result.package}")
    return 0
