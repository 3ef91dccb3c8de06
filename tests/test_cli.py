"""The ``medprint`` command: entry points and the foundation sub-commands, run as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import trimesh

from app import __version__


def medprint(*args: str, data_dir=None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if data_dir is not None:
        env["MEDPRINT_DATA_DIR"] = str(data_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_version():
    assert medprint("--version").stdout.strip() == f"medprint {__version__}"


def test_vault_life_cycle_through_the_cli(data_dir, keystore_service):
    init = medprint("vault", "init", data_dir=data_dir)
    recovery = init.stdout.split("only once):")[1].split()[0]
    assert recovery.startswith("MPRK-")
    status = json.loads(medprint("vault", "status", "--json", data_dir=data_dir).stdout)
    assert status["cases"] == 0 and status["key_generation"] == 1
    rotated = json.loads(medprint("vault", "rotate-key", "--json", data_dir=data_dir).stdout)
    assert rotated["key_generation"] == 2 and rotated["recovery_key"] != recovery
    status = json.loads(medprint("vault", "status", "--json", data_dir=data_dir).stdout)
    assert status["key_generation"] == 2 and status["members"] == 1
    issued = medprint("vault", "recovery-key", data_dir=data_dir).stdout
    assert "shown only once" in issued and rotated["recovery_key"] not in issued
    assert medprint("cases", data_dir=data_dir).stdout.strip() == "no cases"
    verify = medprint("audit", "verify", data_dir=data_dir)
    assert "intact" in verify.stdout
    actions = [
        r["action"]
        for r in json.loads(
            medprint("audit", "export", "--format", "json", data_dir=data_dir).stdout
        )
    ]
    assert actions == [
        "vault.init",
        "vault.rotate_key",
        "vault.recovery_key_issued",
        "audit.verify",
    ]
    listed = json.loads(medprint("users", "list", "--json", data_dir=data_dir).stdout)
    me = whoami(data_dir)
    assert listed == {
        me["user"]: {"roles": ["administrator"], "fingerprint": me["fingerprint"], "member": True}
    }
    gone = medprint("users", "bootstrap", data_dir=data_dir, check=False)
    assert gone.returncode == 2 and "invalid choice" in gone.stderr


def whoami(data_dir) -> dict:
    return json.loads(medprint("whoami", "--json", data_dir=data_dir).stdout)


def test_whoami_names_the_os_account_and_its_roles(data_dir, keystore_service):
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    first = whoami(data_dir)
    assert first["user"] == me and first["roles"] == [] and first["vault"] is False
    text = medprint("whoami", data_dir=data_dir).stdout
    assert text.startswith(me) and "vault init" in text and first["fingerprint"] in text
    medprint("vault", "init", data_dir=data_dir)
    after = whoami(data_dir)
    assert after["roles"] == ["administrator"] and after["member"] is True
    assert after["fingerprint"] == first["fingerprint"]  # the account's keys are kept


def test_import_list_identity_and_audit_through_the_cli(data_dir, keystore_service, dicom_dir):
    medprint("vault", "init", data_dir=data_dir)
    head = dicom_dir / "ct-head-ge-gantry-tilt-28"
    imported = json.loads(medprint("import", str(head), "--json", data_dir=data_dir).stdout)
    pseudonym = imported["case"]
    assert imported["modality"] == "CT" and len(imported["shape"]) == 3
    listed = json.loads(medprint("cases", "--json", data_dir=data_dir).stdout)
    fit = imported["suitability"]  # fit to print? the tilted head CT is not, and says why
    assert {"tilt", "gaps"} <= {w["code"] for w in fit}
    assert listed == [{"pseudonym": pseudonym, "created": listed[0]["created"], "suitability": fit}]
    shown = json.loads(medprint("cases", "--show-identity", "--json", data_dir=data_dir).stdout)
    patient_id = shown[0]["identity"]["patient_id"]
    assert patient_id
    records = json.loads(
        medprint("audit", "show", "--case", pseudonym, "--json", data_dir=data_dir).stdout
    )
    assert [r["action"] for r in records] == ["case.import"]
    log = (data_dir / "audit" / "audit.jsonl").read_text()
    assert "cases.identity_shown" in log and patient_id not in log


def test_errors_are_one_line_with_exit_2(data_dir, keystore_service):
    proc = medprint("vault", "status", data_dir=data_dir, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "medprint vault init" in proc.stderr and "Traceback" not in proc.stderr


def test_tampered_audit_log_fails_verify(data_dir, keystore_service):
    medprint("vault", "init", data_dir=data_dir)
    log = data_dir / "audit" / "audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b"vault.init", b"vault.xxxx"))
    proc = medprint("audit", "verify", data_dir=data_dir, check=False)
    assert proc.returncode == 1 and "record 1" in proc.stdout


@pytest.mark.parametrize("bad", ["{not json", '{"units": "furlong"}', '{"colour": 1}', "[]"])
def test_bad_settings_file_is_a_clear_error(data_dir, bad):
    from app.errors import MedPrintError
    from app.settings import Settings, resolve_paths

    paths = resolve_paths().ensure()
    paths.settings_file.write_text(bad)
    with pytest.raises(MedPrintError, match="setting"):
        Settings.load(paths)


def test_settings_round_trip(data_dir):
    from app.settings import Settings, resolve_paths

    paths = resolve_paths().ensure()
    settings = Settings(units="cm", recent_cases=["C-AAAA-BB"])
    settings.save(paths)
    assert Settings.load(paths) == settings


def test_delete_case_through_the_cli(data_dir, keystore_service):
    from app.security.identity import PersonalKeys
    from app.security.vault import Vault
    from app.settings import resolve_paths

    medprint("vault", "init", data_dir=data_dir)
    pseudonym = Vault.open(resolve_paths(), PersonalKeys.load_or_create()).create_case({})
    assert pseudonym in medprint("cases", data_dir=data_dir).stdout
    medprint("cases", "--delete", pseudonym, data_dir=data_dir)
    assert medprint("cases", data_dir=data_dir).stdout.strip() == "no cases"
    again = medprint("cases", "--delete", pseudonym, data_dir=data_dir, check=False)
    assert again.returncode == 2 and "not in this vault" in again.stderr
    assert '"action":"case.delete"' in (data_dir / "audit" / "audit.jsonl").read_text()


def test_no_keystore_is_a_clear_error_and_nothing_is_stored(data_dir, monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    proc = medprint("vault", "init", data_dir=data_dir, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "gnome-keyring" in proc.stderr and "keystore" in proc.stderr
    assert not (data_dir / "vault" / "vault.json").exists()


# Commands whose output is itself the result, not a report of it.
NO_JSON = {
    "audit export": "prints the log in the --format asked for (json or csv)",
}


def _leaf_commands() -> dict[str, object]:
    """Every runnable ``medprint`` command (with its subcommand) and its parser."""
    import argparse

    from app.cli import build_parser

    found = {}

    def walk(parser, words):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(words)] = parser
        for action in subs:
            for name, child in action.choices.items():
                if child not in found.values():
                    walk(child, [*words, name])

    walk(build_parser(["--help"]), [])
    return found


def test_every_command_that_reports_takes_json():
    missing = [
        name
        for name, parser in _leaf_commands().items()
        if name not in NO_JSON and "--json" not in parser._option_string_actions
    ]
    assert missing == []


def _readme_examples() -> list[str]:
    """The command lines of the README's headless tour (``$M ...``), comments cut off."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [line.split("$M ", 1)[1] for line in readme.splitlines() if "$M " in line]
    return [line.split("  #")[0].strip() for line in lines]


def test_readme_examples_follow_the_grammar(capsys):
    """Each example parses as written (a renamed option or verb fails here first)."""
    import shlex

    from app.cli import build_parser

    examples = _readme_examples()
    assert len(examples) > 20
    for example in examples:
        words = shlex.split(example)
        try:
            build_parser(words).parse_args(words)
        except SystemExit:
            pytest.fail(
                f"README example does not parse: medprint {example}\n{capsys.readouterr().err}"
            )


def _json(capsys, *args: str) -> dict:
    from app.cli import main

    assert main(list(args)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_commands_that_change_something_report_it_as_json(
    data_dir, keystore_service, capsys, tmp_path
):
    from app.cli import main

    assert main(["vault", "init"]) == 0
    capsys.readouterr()
    assert _json(capsys, "settings", "set", "units", "cm", "--json") == {"units": "cm"}
    serial = _json(capsys, "printer-serial", "generic-marlin-220", "SN-0042", "--json")
    assert serial == {"profile": "generic-marlin-220", "serial": "SN-0042"}
    add = ["pacs", "add", "archive", "--aet", "ORTHANC", "--host", "127.0.0.1", "--port", "4242"]
    added = _json(capsys, *add, "--json")["added"]
    assert (added["name"], added["aet"], added["port"]) == ("archive", "ORTHANC", 4242)
    assert _json(capsys, "pacs", "remove", "archive", "--json") == {"removed": "archive"}
    out = tmp_path / "registry.csv"
    assert _json(capsys, "registry", "export", "--out", str(out), "--json") == {
        "registry": str(out)
    }
    forgot = _json(capsys, "printer", "forget", "generic-marlin-220", "--json")
    assert forgot["profile"] == "generic-marlin-220"


def test_convert_reports_the_volume_as_json(data_dir, dicom_dir, capsys, tmp_path):
    out = tmp_path / "head.nii.gz"
    shown = _json(
        capsys, "convert", str(dicom_dir / "ct-head-ge-gantry-tilt-28"), str(out), "--json"
    )
    assert out.is_file() and shown["out"] == "head.nii.gz"
    assert len(shown["size_ijk"]) == 3 and shown["size_ijk"][2] >= 28
    assert all(s > 0 for s in shown["spacing_mm"])


EDITS = [
    ["--cut", "0,0,5:0,0,1"],
    ["--mirror", "x"],
    ["--scale", "0.9"],
    ["--hollow", "2", "--drain", "0"],
    ["--base"],
    ["--label", "--height", "4", "--depth", "1"],
    ["--union", "1"],
    ["--difference", "1"],
]


def test_every_edit_verb_stores_a_new_version_of_the_case(data_dir, keystore_service, capsys):
    """``medprint edit CASE --version N --VERB ...``: each verb makes version N+1 whose parent
    is N, reported with --json (the grammar of issue 13)."""
    from app.case import Case
    from app.cli import main
    from app.workflow.actor import Actor
    from tests.workflow.print_fixtures import QA_PASSED

    assert main(["vault", "init"]) == 0
    me = Actor.current()
    case = Case(me.vault, me.vault.create_case({}))
    block = trimesh.creation.box(extents=(40.0, 30.0, 20.0)).export(file_type="stl")
    case.save_mesh_version({"block": block}, qa=QA_PASSED, info={"author": me.user})
    capsys.readouterr()
    for number, verb in enumerate(EDITS, start=1):
        code = main(["edit", case.pseudonym, "--version", str(number), *verb, "--json"])
        out, err = capsys.readouterr()
        assert code in (0, 1), (verb, err)
        made = json.loads(out)
        assert code == (0 if made["qa"]["passed"] else 1), verb  # exit 1: stored, QA failed
        assert made["version"] == number + 1 and made["edit"]["parent_version"] == number, verb
    operations = [case.mesh_info(n)["operation"] for n in case.mesh_versions()[1:]]
    assert operations == [
        "cut",
        "mirror",
        "scale",
        "hollow",
        "flat_base",
        "label",
        "union",
        "difference",
    ]


def test_an_incomplete_order_is_one_line_on_stderr(data_dir, keystore_service, capsys):
    from app.cli import main
    from app.workflow.actor import Actor

    assert main(["vault", "init"]) == 0
    pseudonym = Actor.current().vault.create_case({})
    capsys.readouterr()
    assert main(["order", pseudonym, "--indication", "trauma", "--region", "head"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "medprint: error: an order also needs --service, --due\n"
