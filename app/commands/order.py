"""``medprint order CASE --indication CODE --region R --service S --due YYYY-MM-DD [--note T]``:
the case order in coded fields (the note stays in the vault). Without --indication: show the
order and the time spent per stage (from the audit trail)."""

from __future__ import annotations

import argparse
import json

from app.errors import MedPrintError
from app.workflow import intake, order
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("order", help="record or show the case order (coded fields)")
    parser.add_argument("case", help="case pseudonym")
    parser.add_argument(
        "--indication", choices=sorted(order.INDICATIONS), help="clinical indication"
    )
    parser.add_argument("--region", choices=order.REGIONS, help="body region")
    parser.add_argument("--service", choices=order.SERVICES, help="requesting service")
    parser.add_argument("--due", metavar="YYYY-MM-DD", help="due date")
    parser.add_argument(
        "--note", default="", help="free text; kept in the vault only, never exported"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_order)


def _order(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    if args.indication is None:
        shown = {"order": order.get_order(actor, case), "minutes": order.stage_times(actor, case)}
    else:
        missing = [f"--{n}" for n in ("region", "service", "due") if getattr(args, n) is None]
        if missing:
            msg = f"an order also needs {', '.join(missing)}"
            raise MedPrintError(msg)
        made = order.set_order(
            actor,
            case,
            indication=args.indication,
            region=args.region,
            service=args.service,
            due=args.due,
            note=args.note,
        )
        shown = {"order": made}
    if args.json:
        print(json.dumps(shown, indent=2, sort_keys=True))
    else:
        for key, value in (shown["order"] or {}).items():
            print(f"{key}: {value}")
        for stage, minutes in shown.get("minutes", {}).items():
            print(f"{stage}: {minutes} min")
    return 0
