"""``medprint pacs nodes|add|echo|find|retrieve|store``: the hospital archive (DIMSE, DICOMweb)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from app.commands.output import add_json, show
from app.commands.progressbar import cli_progress
from app.imaging.pacs.nodes import DEFAULT_OUR_AET, DEFAULT_OUR_PORT, Node
from app.imaging.pacs.query import Query
from app.workflow import intake, pacs
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pacs", help="query and retrieve from a PACS, store models back")
    commands = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    _register_nodes(commands)
    _register_exchange(commands)


def _register_nodes(commands: argparse._SubParsersAction) -> None:
    nodes = commands.add_parser("nodes", help="list the configured PACS nodes")
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(func=_nodes)

    add = commands.add_parser("add", help="add or replace a PACS node (administrators)")
    add.add_argument("node")
    add.add_argument("--aet", required=True, help="the archive's AE title")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=int, required=True)
    add.add_argument("--our-aet", default=DEFAULT_OUR_AET)
    add.add_argument("--our-port", type=int, default=DEFAULT_OUR_PORT, help="C-MOVE destination")
    add.add_argument("--dicomweb", default="", help="DICOMweb root URL (QIDO-RS, WADO-RS)")
    add.add_argument("--tls", action="store_true", help="DICOM TLS to the node's port")
    add.add_argument("--tls-ca", default="", help="PEM CA (or certificate) the node must chain to")
    add.add_argument("--tls-cert", default="", help="our PEM certificate, if the node asks")
    add.add_argument("--tls-key", default="", help="the PEM key of --tls-cert")
    add.add_argument("--research", action="store_true", help="takes de-identified objects only")
    add.add_argument("--clinical", action="store_true", help="takes identified objects of any case")
    add_json(add)
    add.set_defaults(func=_add)

    remove = commands.add_parser("remove", help="remove a PACS node (administrators)")
    remove.add_argument("node")
    add_json(remove)
    remove.set_defaults(func=_remove)

    echo = commands.add_parser("echo", help="test the connection (C-ECHO)")
    echo.add_argument("node")
    add_json(echo)
    echo.set_defaults(func=_echo)


def _register_exchange(commands: argparse._SubParsersAction) -> None:
    find = commands.add_parser("find", help="find studies and their series")
    find.add_argument("node")
    for key in ("patient-id", "name", "birth-date", "accession", "modality"):
        find.add_argument(f"--{key}", default="")
    find.add_argument("--date-from", default="", help="study date from, YYYYMMDD")
    find.add_argument("--date-to", default="", help="study date to, YYYYMMDD")
    find.add_argument("--limit", type=int, default=100)
    find.add_argument("--offset", type=int, default=0)
    find.add_argument("--dicomweb", action="store_true", help="query with QIDO-RS")
    find.add_argument("--json", action="store_true")
    find.set_defaults(func=_find)

    get = commands.add_parser("retrieve", help="retrieve a series into a new case")
    get.add_argument("node")
    get.add_argument("--study", required=True, help="Study Instance UID")
    get.add_argument("--series", help="Series Instance UID (default: the study's largest CT)")
    get.add_argument("--method", choices=pacs.METHODS, default="get")
    get.add_argument("--json", action="store_true")
    get.set_defaults(func=_retrieve)

    store = commands.add_parser("store", help="store an approved mesh version as DICOM")
    store.add_argument("node")
    store.add_argument("case")
    store.add_argument("--version", type=int, required=True)
    store.add_argument("--deidentified", action="store_true", help="PS3.15 Basic Profile")
    add_json(store)
    store.set_defaults(func=_store)


def _nodes(args: argparse.Namespace) -> int:
    found = pacs.nodes(Actor.current())
    if args.json:
        print(json.dumps([asdict(n) for n in found], indent=2))
    for n in [] if args.json else found:
        web = f" dicomweb {n.dicomweb}" if n.dicomweb else ""
        kind = " [clinical]" if n.clinical else " [research]" if n.research else ""
        kind += " [tls]" if n.tls else ""
        print(f"{n.name}: {n.aet}@{n.host}:{n.port} (we are {n.our_aet}:{n.our_port}){web}{kind}")
    return 0


def _add(args: argparse.Namespace) -> int:
    node = Node(
        args.node, args.aet, args.host, args.port, args.our_aet, args.our_port,
        args.dicomweb, research=args.research, clinical=args.clinical, tls=args.tls,
        tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
    )  # fmt: skip
    pacs.add_node(Actor.current(), node)
    show(args, {"added": asdict(node)}, f"added PACS node {node.name}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    pacs.remove_node(Actor.current(), args.node)
    show(args, {"removed": args.node}, f"removed PACS node {args.node}")
    return 0


def _echo(args: argparse.Namespace) -> int:
    seconds = pacs.echo(Actor.current(), args.node)
    facts = {"node": args.node, "echo_ms": round(seconds * 1000, 1)}
    show(args, facts, f"{args.node}: C-ECHO ok in {seconds * 1000:.0f} ms")
    return 0


def _find(args: argparse.Namespace) -> int:
    query = Query(
        args.patient_id, args.name, args.birth_date, args.accession, args.modality,
        args.date_from, args.date_to,
    )  # fmt: skip
    method = "dicomweb" if args.dicomweb else "dimse"
    page = pacs.find(
        Actor.current(), args.node, query, limit=args.limit, offset=args.offset, method=method
    )
    if args.json:
        print(json.dumps(page.to_json(), indent=2))
        return 0
    for study in page.studies:
        print(f"{study.patient_name}  {study.patient_id}  {study.date}  study {study.uid}")
        for s in study.series:
            print(f"    {s.modality:4} #{s.number}  {s.instances} images  series {s.uid}")
    if page.more:
        shown = args.offset + len(page.studies)
        print(f"more than {shown} matches: narrow the query, or see the next {args.limit} "
              f"with --offset {shown}")  # fmt: skip
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    with cli_progress("retrieving") as progress:
        got = pacs.retrieve(
            Actor.current(), args.node, args.study, args.series, method=args.method,
            progress=progress,
        )  # fmt: skip
    facts = got.case.series_facts()
    if args.json:
        out = {
            "case": got.case.pseudonym,
            "modality": facts["modality"],
            "shape": facts["geometry"]["shape"],
            "spacing": facts["geometry"]["spacing"],
            "warnings": facts["warnings"],
            "instances": got.instances,
            "rejected": got.rejected,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(got.case.pseudonym)
    for reason in got.rejected:
        print(f"rejected instance: {reason}")
    for warning in facts["warnings"]:
        print(f"warning: {warning}")
    return 0


def _store(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    with cli_progress("storing") as progress:
        stored = pacs.store(
            actor, case, args.node, args.version, deidentified=args.deidentified,
            progress=progress,
        )  # fmt: skip
    show(
        args, asdict(stored) | {"version": args.version}, pacs.stored_summary(stored, args.version)
    )
    return 0
