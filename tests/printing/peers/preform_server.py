"""A contract PreFormServer: the Formlabs Local API as published (scenes, models, devices).

- ``POST /scene/`` (``machine_type``, ``material_code``, ``layer_thickness_mm`` required; an
  unknown machine type or material is 400) answers the scene object (``id``, ``models``,
  ``scene_settings``, ``material_usage``, ``layer_count``); ``GET`` / ``DELETE /scene/{id}/``.
- ``POST /scene/{id}/import-model/`` reads ``file`` (a full local path) and answers the model
  object (``id``, ``name``, ``bounding_box``, ``has_supports``, ``in_bounds``,
  ``raw_mesh_hash``). Here ``raw_mesh_hash`` is the SHA-256 of the file read.
- ``POST /scene/{id}/auto-orient/``, ``auto-support/``, ``auto-layout/``;
  ``GET /scene/{id}/print-validation/`` (``per_model_results``: ``cups``,
  ``unsupported_minima``, ``undersupported``, ``has_seamline``);
  ``GET /scene/{id}/estimate-print-time/`` (``total_print_time_s``).
- ``POST /scene/{id}/print/`` (``printer``, ``job_name``) answers ``job_id``; the device then
  runs the print: ``GET /devices/`` and ``/devices/{id}/`` with ``current_print_run``
  (``status`` PRINTING / FINISHED / ABORTED / ERROR, ``currently_printing_layer``,
  ``layer_count``, ``elapsed_duration_ms``, ``estimated_time_remaining_ms``).

Errors are ``{"error": {"code", "message"}}`` with the HTTP status. Faults: ``swap_mesh`` (PreForm
reports another mesh for every import), ``swap_after_support`` (the mesh changes when supports
are added), ``cups`` (validation finds cups), ``busy`` (the printer is printing another job),
``garbage`` (HTML instead of JSON), ``delay`` (seconds before every answer).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PRINTER = "Form4-CalmOtter"
MACHINES = ("FORM-3-0", "FORM-3B-0", "FORM-4-0", "FORM-4B-0")
MATERIALS = ("FLGPGR05", "FLBMCL01", "FLBMAM01")


class PreFormContract:
    """The server's state; ``url`` once started."""

    def __init__(self, *, layers_per_second: float = 200.0) -> None:
        self.layers_per_second = layers_per_second
        self.scenes: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.printed: list[dict] = []
        self.run: dict | None = None
        self.swap_mesh = False
        self.swap_after_support = False
        self.cups = 0
        self.busy = False
        self.garbage = False
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._run, daemon=True),
        ]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PreFormContract:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    # -- the printer -------------------------------------------------------------------------

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.02):
            now = time.monotonic()
            dt, last = now - last, now
            with self._lock:
                run = self.run
                if run is None or run["status"] != "PRINTING":
                    continue
                run["_layer"] = min(run["layer_count"], run["_layer"] + dt * self.layers_per_second)
                run["currently_printing_layer"] = int(run["_layer"])
                run["elapsed_duration_ms"] += int(dt * 1000)
                left = (run["layer_count"] - run["_layer"]) / self.layers_per_second
                run["estimated_time_remaining_ms"] = int(left * 1000)
                if run["_layer"] >= run["layer_count"]:
                    run["status"] = "FINISHED"

    def device(self) -> dict:
        with self._lock:
            run = None
            if self.busy:
                run = {"status": "PRINTING", "name": "other-job", "layer_count": 900}
            elif self.run is not None:
                run = {k: v for k, v in self.run.items() if not k.startswith("_")}
        return {
            "id": PRINTER,
            "product_name": "Form 4B",
            "status": "PRINTING" if run and run["status"] == "PRINTING" else "IDLE",
            "is_connected": True,
            "connection_type": "ETHERNET",
            "ip_address": "127.0.0.1",
            "firmware_version": "1.9.0",
            "current_print_run": run,
        }

    def send(self, scene: dict, printer: str, job_name: str) -> tuple[int, dict]:
        if printer != PRINTER:
            return 404, _error("PRINTER_NOT_FOUND", f"Printer {printer} not found")
        if self.busy or (self.run and self.run["status"] == "PRINTING"):
            return 409, _error("PRINTER_BUSY", "Printer is busy")
        layers = scene["layer_count"]
        with self._lock:
            self.run = {
                "name": job_name,
                "status": "PRINTING",
                "currently_printing_layer": 0,
                "layer_count": layers,
                "elapsed_duration_ms": 0,
                "estimated_time_remaining_ms": int(layers / self.layers_per_second * 1000),
                "_layer": 0.0,
            }
        job = {"job_id": uuid.uuid4().hex, "scene": scene["id"], "job_name": job_name}
        self.printed.append({**job, "models": [dict(m) for m in scene["models"]]})
        return 200, {"job_id": job["job_id"]}

    # -- scenes ------------------------------------------------------------------------------

    def create_scene(self, body: dict) -> tuple[int, dict]:
        for key in ("machine_type", "material_code", "layer_thickness_mm"):
            if key not in body:
                return 400, _error("MISSING_FIELD", f"{key} is required")
        if body["machine_type"] not in MACHINES:
            return 400, _error(
                "INVALID_MACHINE_TYPE", f"Unknown machine type {body['machine_type']}"
            )
        if body["material_code"] not in MATERIALS:
            return 400, _error("INVALID_MATERIAL", f"Unknown material {body['material_code']}")
        scene = {
            "id": uuid.uuid4().hex,
            "models": [],
            "scene_settings": {
                k: body.get(k)
                for k in ("machine_type", "material_code", "layer_thickness_mm", "print_setting")
            },
            "material_usage": {"volume_ml": 0.0, "unsupported_volume_ml": 0.0},
            "layer_count": 0,
        }
        self.scenes[scene["id"]] = scene
        return 200, scene

    def import_model(self, scene: dict, body: dict) -> tuple[int, dict]:
        path = Path(str(body.get("file", "")))
        if not path.is_absolute():
            return 400, _error("INVALID_PATH", "file must be a full path")
        try:
            data = path.read_bytes()
        except OSError:
            return 400, _error("FILE_NOT_FOUND", f"Cannot open file {path.name}")
        facts = _stl_facts(data)
        if facts is None:
            return 400, _error("INVALID_MESH", "The file is not a readable mesh")
        digest = hashlib.sha256(data).hexdigest()
        if self.swap_mesh:
            digest = hashlib.sha256(data + b"repaired").hexdigest()
        low, high, volume_ml = facts
        model = {
            "id": uuid.uuid4().hex,
            "name": body.get("name") or path.stem,
            "position": {"x": 0, "y": 0, "z": 0},
            "orientation": {"x": 0, "y": 0, "z": 0},
            "scale": 1,
            "units": body.get("units", "DETECTED"),
            "bounding_box": {"min_corner": low, "max_corner": high},
            "original_file": str(path),
            "visible": True,
            "has_supports": False,
            "in_bounds": True,
            "raw_mesh_hash": digest,
            "lock": "FREE",
        }
        scene["models"].append(model)
        scene["material_usage"]["volume_ml"] += volume_ml
        height = high["z"] - low["z"]
        thickness = scene["scene_settings"]["layer_thickness_mm"] or 0.05
        scene["layer_count"] = max(scene["layer_count"], int(height / thickness) + 1)
        return 200, model

    def auto(self, scene: dict, step: str) -> tuple[int, dict]:
        if not scene["models"]:
            return 400, _error("NO_MODELS", "The scene has no models")
        if step == "auto-support":
            for model in scene["models"]:
                model["has_supports"] = True
                if self.swap_after_support:
                    model["raw_mesh_hash"] = hashlib.sha256(model["id"].encode()).hexdigest()
            scene["material_usage"]["volume_ml"] *= 1.15
            scene["layer_count"] += 40  # the raft
        return 200, scene

    def validation(self, scene: dict) -> dict:
        results = {}
        for model in scene["models"]:
            results[model["id"]] = {
                "cups": self.cups,
                "unsupported_minima": 0 if model["has_supports"] else 3,
                "undersupported": not model["has_supports"],
                "has_seamline": False,
            }
        return {"per_model_results": results}

    def estimate(self, scene: dict) -> dict:
        return {"total_print_time_s": scene["layer_count"] * 9.5}


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _stl_facts(data: bytes) -> tuple[dict, dict, float] | None:
    """Bounding box and volume (ml) of an STL, read with trimesh as PreForm reads the file."""
    import io

    import trimesh

    try:
        mesh = trimesh.load(io.BytesIO(data), file_type="stl", force="mesh")
    except Exception:
        return None
    if mesh.is_empty:
        return None
    low, high = (dict(zip("xyz", map(float, corner), strict=True)) for corner in mesh.bounds)
    return low, high, abs(float(mesh.volume)) / 1000.0


def _handler(contract: PreFormContract) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, payload: object) -> None:
            data = b"<html><body>PreForm is starting</body></html>"
            ctype = "text/html"
            if not contract.garbage:
                data, ctype = json.dumps(payload).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _route(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length)) if length else {}
            except ValueError:
                self._reply(400, _error("INVALID_JSON", "Request body is not JSON"))
                return
            contract.requests.append((method, url.path, body))
            time.sleep(contract.delay)
            parts = [p for p in url.path.split("/") if p]
            status, payload = self._answer(method, parts, body)
            self._reply(status, payload)

        def _answer(self, method: str, parts: list[str], body: dict) -> tuple[int, object]:
            if parts == ["devices"] and method == "GET":
                return 200, {"count": 1, "devices": [contract.device()]}
            if len(parts) == 2 and parts[0] == "devices" and method == "GET":
                if parts[1] != PRINTER:
                    return 404, _error("NOT_FOUND", "Device not found")
                return 200, contract.device()
            if parts == ["scene"] and method == "POST":
                return contract.create_scene(body)
            if len(parts) >= 2 and parts[0] == "scene":
                scene = contract.scenes.get(parts[1])
                if scene is None:
                    return 404, _error("SCENE_NOT_FOUND", f"Scene {parts[1]} not found")
                return self._scene(method, scene, parts[2:], body)
            return 404, _error("NOT_FOUND", "Not found")

        def _scene(
            self, method: str, scene: dict, rest: list[str], body: dict
        ) -> tuple[int, object]:
            action = rest[0] if rest else ""
            if (method, action) == ("GET", ""):
                return 200, scene
            if (method, action) == ("DELETE", ""):
                contract.scenes.pop(scene["id"], None)
                return 200, scene
            if (method, action) == ("POST", "import-model"):
                return contract.import_model(scene, body)
            if method == "POST" and action in ("auto-orient", "auto-support", "auto-layout"):
                return contract.auto(scene, action)
            if (method, action) == ("GET", "print-validation"):
                return 200, contract.validation(scene)
            if (method, action) == ("GET", "estimate-print-time"):
                return 200, contract.estimate(scene)
            if (method, action) == ("POST", "print"):
                return contract.send(scene, str(body.get("printer")), str(body.get("job_name")))
            return 404, _error("NOT_FOUND", "Not found")

    return Handler
