"""A real Orthanc on 127.0.0.1 for the PACS tests: its own folder, free ports, MedPrint's AE
registered, unknown SOP classes (the 3D model objects) accepted, DICOMweb enabled."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
OUR_AET = "MEDPRINT"
PACS_AET = "ORTHANC"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_orthanc() -> None:
    """Skip without Orthanc; under CI=true a missing Orthanc fails instead."""
    if Path(ORTHANC).exists() and Path(DICOMWEB_PLUGIN).exists():
        return
    msg = "Orthanc (Debian orthanc, orthanc-dicomweb) is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@dataclass
class Orthanc:
    folder: Path
    our_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    tls: dict | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict:
        storage = self.folder / "storage"
        config = {
            "Name": "medprint-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": PACS_AET,
            "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "UnknownSopClassAccepted": True,
            "DicomModalities": {"medprint": [OUR_AET, "127.0.0.1", self.our_port]},
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "StorageCompression": False,
            "SyncStorageArea": False,
            "HttpVerbose": False,
        }
        return config | (self.tls or {})

    def start(self) -> Orthanc:
        require_orthanc()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(self.config(), indent=2))
        log = (self.folder / "orthanc.log").open("wb")
        self.process = subprocess.Popen([ORTHANC, str(path)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.get("/system")
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        msg = f"Orthanc did not start; see {self.folder / 'orthanc.log'}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            data = response.read()
        return json.loads(data) if data[:1] in (b"{", b"[") else data

    def post(self, path: str, data: bytes, content_type: str = "application/dicom") -> object:
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": content_type}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def upload(self, files: list[Path]) -> int:
        for file in files:
            self.post("/instances", file.read_bytes())
        return len(files)

    def upload_bytes(self, data: bytes) -> dict:
        return self.post("/instances", data)  # type: ignore[return-value]


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target)
