"""Formlabs printers through PreForm's Local API (``PreFormServer``, HTTP on localhost).

A Formlabs printer is not sent G-code: PreForm prepares the job itself. One print is::

    POST /scene/                          machine_type, material_code, layer_thickness_mm
    POST /scene/{id}/import-model/        the approved mesh's STL (a full local path),
                                          units MILLIMETERS, repair_behavior ERROR
    POST /scene/{id}/auto-orient/  auto-support/  auto-layout/     {"models": "ALL"}
    GET  /scene/{id}/print-validation/    per model: cups, unsupported minima, undersupport
    GET  /scene/{id}/estimate-print-time/ seconds; the scene's material_usage gives resin ml
    GET  /scene/{id}/                     models, read back just before sending
    POST /scene/{id}/print/               printer, job_name -> job_id
    GET  /devices/  /devices/{id}/        printers PreForm sees, and their state

**The mesh check.** Every model object PreForm reports carries ``raw_mesh_hash``, the hash of
the raw mesh it imported. We import the approved part's STL unchanged (``repair_behavior
ERROR``: PreForm may not repair it silently) and require, right after the import and again
right before ``print``, that the scene holds exactly the models we imported and that each
one's ``raw_mesh_hash`` is the SHA-256 of that part's STL, the hash the approval names. The
Local API does not document how ``raw_mesh_hash`` is computed; we take it to be the SHA-256 of
the imported file. If a PreForm release hashes otherwise, every print is refused (the check
fails closed) until this is adapted: nothing is ever sent unchecked.

The Local API has no pause, resume or cancel of a running print: those are done on the
printer's screen. Progress is followed from the device's ``current_print_run``.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from app.errors import MedPrintError, PrinterConnectionError, PrintingError
from app.printing.backends.octoprint import JsonHttp
from app.printing.backends.remote import RemoteJob, RemoteStatus
from app.printing.job import GcodeSummary
from app.printing.marlin import PrinterState

SERVER = "PreForm"
SOURCE = "printer (PreForm device id)"
MACHINE_TYPES = {  # profile resin.model -> PreForm machine_type
    "FORM3": "FORM-3-0",
    "FORM3B": "FORM-3B-0",
    "FORM4": "FORM-4-0",
    "FORM4B": "FORM-4B-0",
}
DEFAULT_MATERIAL = "FLGPGR05"  # Grey Resin V5; a medical job names its resin (e.g. BioMed)
_RUN_STATES = {
    "PRINTING": PrinterState.PRINTING,
    "PREPRINT": PrinterState.PRINTING,
    "PAUSING": PrinterState.PAUSED,
    "PAUSED": PrinterState.PAUSED,
    "FINISHED": PrinterState.FINISHED,
    "ABORTING": PrinterState.CANCELLED,
    "ABORTED": PrinterState.CANCELLED,
    "ERROR": PrinterState.ERROR,
    "QUEUED": PrinterState.CONNECTING,
    "WAITING_FOR_RESOLUTION": PrinterState.PAUSED,
}


@dataclass(frozen=True)
class MeshPart:
    """One part to print: its name in the scene, the STL on disk and the approved SHA-256."""

    name: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class SceneSettings:
    """PreForm's scene: printer type, resin and layer thickness."""

    machine_type: str
    material_code: str = DEFAULT_MATERIAL
    layer_thickness_mm: float = 0.05
    print_setting: str = "DEFAULT"

    @classmethod
    def for_model(
        cls, model: str, layer_height: float, material_code: str | None = None
    ) -> SceneSettings:
        """Settings for a printer profile's model (e.g. "FORM4B")."""
        machine = MACHINE_TYPES.get(model.upper())
        if machine is None:
            msg = f"PreForm printer type for '{model}' is unknown; use one of {', '.join(MACHINE_TYPES)}"
            raise PrintingError(msg)
        return cls(machine, material_code or DEFAULT_MATERIAL, layer_height)


@dataclass(frozen=True)
class Estimate:
    """PreForm's estimate for a prepared scene."""

    seconds: float | None
    resin_ml: float | None
    layers: int | None


class PreFormClient:
    """One PreFormServer; every call is one Local API request (no authentication: localhost)."""

    kind = "formlabs"

    def __init__(self, url: str, *, timeout: float = 600.0) -> None:
        self.http = JsonHttp(url, None, server=SERVER, timeout=timeout)

    def _call(self, method: str, path: str, body: object = None, **kwargs: object) -> dict:
        answer = self.http.request(method, path, body=body, **kwargs)
        if not isinstance(answer, dict):
            msg = f"{SERVER} sent an answer that is not a JSON object; is the URL that of "
            msg += "PreFormServer?"
            raise PrinterConnectionError(msg)
        return answer

    # -- devices -----------------------------------------------------------------------------

    def devices(self) -> list[dict]:
        found = self._call("GET", "/devices/", query={"can_print": "true"}).get("devices")
        return [d for d in found or [] if isinstance(d, dict)]

    def device(self, printer: str) -> dict:
        return self._call("GET", f"/devices/{urllib.parse.quote(printer)}/")

    def test_connection(self) -> str:
        """e.g. "PreForm Local API, 1 printer: Form4-Calm-Otter (Form 4B, IDLE)"."""
        devices = self.devices()
        seen = ", ".join(
            f"{d.get('id')} ({d.get('product_name', '?')}, {d.get('status', '?')})" for d in devices
        )
        count = f"{len(devices)} printer{'s' if len(devices) != 1 else ''}"
        return f"{SERVER} Local API, {count}" + (f": {seen}" if seen else "")

    def check_printer(self, printer: str) -> dict:
        """The device ``printer``, when it is connected and free; else a clear refusal."""
        known = {str(d.get("id")): d for d in self.devices()}
        device = known.get(printer)
        if device is None:
            names = ", ".join(known) or "none"
            msg = f"{SERVER} does not see printer '{printer}' (it sees: {names}); check the "
            msg += "printer's network, or discover it in PreForm"
            raise PrinterConnectionError(msg)
        if not device.get("is_connected", True):
            msg = f"printer '{printer}' is known to {SERVER} but not connected; switch it on"
            raise PrinterConnectionError(msg)
        run = _dict(device.get("current_print_run"))
        if str(run.get("status", "")).upper() in ("PRINTING", "PREPRINT", "PAUSED", "PAUSING"):
            msg = f"printer '{printer}' is busy ({str(run['status']).lower()}); wait for the "
            msg += "current print to end, then send again"
            raise PrinterConnectionError(msg)
        return device

    # -- the scene ---------------------------------------------------------------------------

    def create_scene(self, settings: SceneSettings) -> str:
        body = {
            "machine_type": settings.machine_type,
            "material_code": settings.material_code,
            "layer_thickness_mm": settings.layer_thickness_mm,
            "print_setting": settings.print_setting,
        }
        scene = self._call("POST", "/scene/", body)
        if not scene.get("id"):
            msg = f"{SERVER} created no scene; check the printer type and resin"
            raise PrinterConnectionError(msg)
        return str(scene["id"])

    def import_model(self, scene: str, part: MeshPart) -> dict:
        body = {
            "file": str(part.path),
            "name": part.name,
            "units": "MILLIMETERS",
            "repair_behavior": "ERROR",
        }
        model = self._call("POST", f"/scene/{scene}/import-model/", body)
        if not model.get("id"):
            msg = f"{SERVER} imported no model from part {part.name}"
            raise PrinterConnectionError(msg)
        return model

    def prepare(self, scene: str) -> None:
        """Orient, support and lay out every model, as PreForm would."""
        for step in ("auto-orient", "auto-support", "auto-layout"):
            self._call("POST", f"/scene/{scene}/{step}/", {"models": "ALL"})

    def scene(self, scene: str) -> dict:
        return self._call("GET", f"/scene/{scene}/")

    def validate(self, scene: str) -> None:
        """Refuse a scene PreForm finds unprintable, naming each problem."""
        found = self._call("GET", f"/scene/{scene}/print-validation/")
        results = _dict(found.get("per_model_results"))
        models = [m for m in self.scene(scene).get("models") or [] if isinstance(m, dict)]
        names = {m.get("id"): m.get("name") for m in models}
        problems = []
        for model_id, result in results.items():
            problems += [f"{names.get(model_id, model_id)}: {p}" for p in _problems(_dict(result))]
        if problems:
            msg = f"{SERVER} finds the job unprintable ({'; '.join(problems)}); fix the mesh or "
            msg += "its supports and send again"
            raise PrintingError(msg)

    def estimate(self, scene: str) -> Estimate:
        found = self._call("GET", f"/scene/{scene}/estimate-print-time/")
        facts = self.scene(scene)
        usage = _dict(facts.get("material_usage"))
        return Estimate(
            _float(found.get("total_print_time_s")),
            _float(usage.get("volume_ml")),
            _int(facts.get("layer_count")),
        )

    def print(self, scene: str, printer: str, job_name: str) -> str:
        answer = self._call(
            "POST", f"/scene/{scene}/print/", {"printer": printer, "job_name": job_name}
        )
        return str(answer.get("job_id", ""))

    def delete_scene(self, scene: str) -> None:
        self._call("DELETE", f"/scene/{scene}/")


def check_meshes(scene: dict, expected: dict[str, MeshPart]) -> None:
    """The scene holds exactly the imported models, each with the approved mesh's hash.

    ``expected`` maps PreForm's model id to the part imported as it. Raises
    :class:`PrintingError` naming the first difference: nothing is sent then.
    """
    models = {str(m.get("id")): m for m in scene.get("models", []) if isinstance(m, dict)}
    extra = sorted(set(models) - set(expected))
    missing = sorted(set(expected) - set(models))
    if extra or missing:
        msg = f"{SERVER}'s scene holds other models than the approved mesh (extra: "
        msg += f"{', '.join(extra) or 'none'}, missing: {', '.join(missing) or 'none'}); "
        msg += "the print was not sent"
        raise PrintingError(msg)
    for model_id, part in expected.items():
        reported = str(models[model_id].get("raw_mesh_hash") or "").lower()
        if reported != part.sha256:
            msg = f"{SERVER} reports a different mesh for part {part.name} than the approved one "
            msg += f"(hash {reported[:12] or 'none'}, approved {part.sha256[:12]}); the print was "
            msg += "not sent: export the approved version again and check PreForm"
            raise PrintingError(msg)


class PreFormPrint:
    """One print of approved mesh parts on one Formlabs printer, as a
    :class:`app.printing.backends.remote.RemoteBackend`: ``upload_and_start`` prepares the scene,
    checks it and sends it; ``poll`` follows the printer."""

    kind = "formlabs"

    def __init__(
        self, client: PreFormClient, parts: list[MeshPart], settings: SceneSettings, printer: str
    ) -> None:
        if not parts:
            msg = "nothing to print: the mesh version has no parts"
            raise PrintingError(msg)
        self.client = client
        self.parts = parts
        self.settings = settings
        self.printer = printer
        self.scene_id: str | None = None
        self.job_id: str | None = None
        self.estimate: Estimate | None = None
        self.serial: str | None = None
        self.model = ""

    @property
    def mesh_sha256(self) -> str:
        """One hash over the parts' hashes, in order (for the job's record)."""
        return hashlib.sha256("\n".join(p.sha256 for p in self.parts).encode()).hexdigest()

    def test_connection(self) -> str:
        return self.client.test_connection()

    def connect(self) -> None:
        device = self.client.check_printer(self.printer)
        self.serial = str(device.get("id") or self.printer)
        self.model = str(device.get("product_name") or "")

    def identity(self) -> dict[str, str]:
        """The printer's serial name and model, as PreForm reported them on connecting."""
        return {"serial": self.serial or "", "model": self.model, "source": SOURCE}

    def close(self) -> None:
        """Nothing to release: every call is one HTTP request."""

    def upload_and_start(self, name: str, data: bytes, sha256: str) -> None:
        """Scene, import, mesh check, orient/support/layout, validation, estimate, mesh check
        again, and only then print (``name`` becomes the job name)."""
        scene = self.client.create_scene(self.settings)
        self.scene_id = scene
        try:
            self._send(scene, name)
        except MedPrintError:
            self._discard(scene)
            raise

    def _send(self, scene: str, name: str) -> None:
        expected = {}
        for part in self.parts:
            if _file_sha256(part.path) != part.sha256:
                msg = f"the exported part {part.name} is not the approved mesh; send it again"
                raise PrintingError(msg)
            expected[str(self.client.import_model(scene, part)["id"])] = part
        check_meshes(self.client.scene(scene), expected)
        self.client.prepare(scene)
        self.client.validate(scene)
        self.estimate = self.client.estimate(scene)
        check_meshes(self.client.scene(scene), expected)
        self.job_id = self.client.print(scene, self.printer, name)

    def _discard(self, scene: str) -> None:
        """Drop a scene that was not sent, so no one prints it from PreForm by mistake."""
        try:
            self.client.delete_scene(scene)
        except PrinterConnectionError:
            return

    def poll(self) -> RemoteStatus:
        run = _dict(self.client.device(self.printer).get("current_print_run"))
        status = str(run.get("status", "")).upper()
        state = _RUN_STATES.get(status, PrinterState.IDLE if not run else PrinterState.ERROR)
        layer, layers = _int(run.get("currently_printing_layer")), _int(run.get("layer_count"))
        progress = (layer or 0) / layers if layers else 0.0
        elapsed = _float(run.get("elapsed_duration_ms"))
        left = _float(run.get("estimated_time_remaining_ms"))
        message = "waiting for confirmation on the printer" if status == "QUEUED" else ""
        if state == PrinterState.ERROR:
            message = str(
                run.get("message") or f"the printer reports {status.lower() or 'an error'}"
            )
        return RemoteStatus(
            state=state,
            progress=min(max(progress, 0.0), 1.0),
            elapsed=None if elapsed is None else elapsed / 1000.0,
            remaining=None if left is None else left / 1000.0,
            layer=layer,
            layers=layers,
            message=message,
        )

    def _on_printer(self, what: str) -> None:
        msg = f"{SERVER}'s Local API cannot {what} a print; {what} it on the printer's screen"
        raise PrinterConnectionError(msg)

    def pause(self) -> None:
        self._on_printer("pause")

    def resume(self) -> None:
        self._on_printer("resume")

    def cancel(self) -> None:
        self._on_printer("cancel")

    def emergency_stop(self) -> None:
        self._on_printer("stop")


class FormlabsJob(RemoteJob):
    """A print of approved mesh parts prepared by PreForm and run by a Formlabs printer."""

    backend: PreFormPrint

    def __init__(self, backend: PreFormPrint, **kwargs: object) -> None:
        super().__init__(b"", backend, **kwargs)  # type: ignore[arg-type]

    def summarize(self) -> GcodeSummary:
        """No G-code: the summary is the parts' hash and size; PreForm estimates the time."""
        if self.summary is None:
            size = sum(p.path.stat().st_size for p in self.backend.parts)
            self.summary = GcodeSummary(self.backend.mesh_sha256, size, 0, (), None)
        return self.summary

    def facts(self) -> dict[str, object]:
        facts = super().facts()
        for key in ("gcode_sha256", "commands"):
            facts.pop(key, None)
        estimate = self.backend.estimate
        facts.update(
            parts_sha256=[p.sha256 for p in self.backend.parts],
            preform_job=self.backend.job_id,
            estimated_s=estimate.seconds if estimate else None,
            resin_ml=estimate.resin_ml if estimate else None,
        )
        if self.backend.serial:  # unless the job's own machine facts already say
            facts.setdefault("serial", self.backend.serial)
            facts.setdefault("serial_source", SOURCE)
        return facts


def _problems(found: dict) -> list[str]:
    problems = []
    if found.get("cups"):
        problems.append(f"{found['cups']} cups (trapped resin, suction)")
    if found.get("unsupported_minima"):
        problems.append(f"{found['unsupported_minima']} unsupported minima")
    if found.get("undersupported"):
        problems.append("undersupported")
    if found.get("in_bounds") is False:
        problems.append("outside the build volume")
    return problems


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _float(value: object) -> float | None:
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
