"""``medprint demo``: the whole pipeline, headless, on the bundled sample case or any CT.

import → bone in one click → surface with QA → pseudonym label → approval (as the demo
reviewer) → slicing → signed package → verification; each step is timed and reported through
a callback. Everything is stored in the vault and audited exactly as in the GUI; only the
package (de-identified, signed) leaves it, into ``out_dir``.

The model printed by the demo is a block of the spine around the middle of the scan (the
whole skeleton of a chest-abdomen-pelvis CT would not fit a common printer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from app.case import Case, import_path
from app.errors import MedPrintError
from app.imaging.volume import Volume
from app.progress import CancelToken, check_cancel
from app.security import access
from app.security.vault import Vault
from app.settings import resolve_paths

DEMO_REVIEWER = "medprint-demo-reviewer"
DEMO_PRINTER = "generic-marlin-220"
DEMO_MATERIAL = "pla"
SLAB_MM = 70.0

Report = Callable[[str, float, str], None]


@dataclass
class DemoResult:
    case: str
    package: Path
    verified: bool
    steps: list[tuple[str, float, str]] = field(default_factory=list)


class _Steps:
    def __init__(self, report: Report | None, cancel: CancelToken | None) -> None:
        self.report = report
        self.cancel = cancel
        self.done: list[tuple[str, float, str]] = []

    def run(self, name: str, fn: Callable[[], tuple[object, str]]) -> object:
        check_cancel(self.cancel)
        start = time.perf_counter()
        value, summary = fn()
        seconds = time.perf_counter() - start
        self.done.append((name, seconds, summary))
        if self.report is not None:
            self.report(name, seconds, summary)
        return value


def run_demo(
    out_dir: str | Path,
    input_dir: str | Path | None = None,
    *,
    report: Report | None = None,
    cancel: CancelToken | None = None,
) -> DemoResult:
    """Run the pipeline into ``out_dir``; ``input_dir``: a CT to use instead of the sample."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = _Steps(report, cancel)
    vault = steps.run("vault", _open_vault)
    user = access.current_user()
    steps.run("roles", lambda: _demo_roles(vault, user))
    case = steps.run("import", lambda: _import(vault, input_dir))
    volume = case.load_volume()
    mask = steps.run("bone in one click", lambda: _segment(case, volume))
    mesh_name, qa = steps.run("surface, label, QA", lambda: _mesh(case, volume, mask))
    steps.run("approval", lambda: _approve(case, mesh_name, qa))
    gcode_name, slicer_facts = steps.run("slicing", lambda: _slice(case, mesh_name))
    package = steps.run(
        "signed package",
        lambda: _package(case, out, mesh_name, gcode_name, slicer_facts, user=user),
    )
    verified = steps.run("verification", lambda: _verify(package))
    return DemoResult(case.pseudonym, package, verified, steps.done)


def _open_vault() -> tuple[Vault, str]:
    paths = resolve_paths()
    if Vault.exists(paths):
        return Vault.open(paths), "opened the vault"
    vault, recovery = Vault.init(paths)
    return vault, f"created a new vault; its recovery key (keep it offline): {recovery}"


def _demo_roles(vault: Vault, user: str) -> tuple[None, str]:
    roles = access.roles_of(user, vault)
    if access.ADMINISTRATOR not in roles:
        if access.TECHNICIAN in roles and access.REVIEWER in access.roles_of(DEMO_REVIEWER, vault):
            return None, f"{user} is a technician; the demo reviewer exists"
        msg = f"the demo needs an administrator to set up its roles; '{user}' is not one"
        raise MedPrintError(msg)
    for who, role in ((user, access.TECHNICIAN), (DEMO_REVIEWER, access.REVIEWER)):
        if role not in access.roles_of(who, vault):
            access.assign_role(user, who, role, vault)
    return None, f"{user}: technician; {DEMO_REVIEWER}: reviewer"


def _import(vault: Vault, input_dir: str | Path | None) -> tuple[Case, str]:
    if input_dir is None:
        from app.sample import open_or_import_sample  # noqa: PLC0415

        case = open_or_import_sample(vault)
        return case, f"sample case {case.pseudonym}"
    case = import_path(str(input_dir), vault=vault)
    return case, f"largest CT series imported as {case.pseudonym}"


def _segment(case: Case, volume: Volume) -> tuple[np.ndarray, str]:
    from app.tools.segmentation.base import get_tool  # noqa: PLC0415
    from app.tools.segmentation.model import Segmentation  # noqa: PLC0415
    from app.tools.segmentation.storage import save_to_case  # noqa: PLC0415

    if volume.modality != "CT":
        msg = f"the demo needs a CT series, this case is {volume.modality}"
        raise MedPrintError(msg)
    seg = Segmentation(volume)
    tool = get_tool("bone")
    tool.apply(seg, volume, tool.default_params())
    save_to_case(case, seg)
    bone = seg.mask("bone")
    block = _spine_block(bone, volume)
    ml = block.sum() * volume.voxel_volume_mm3() / 1000.0
    return (
        block,
        f"bone {bone.sum() * volume.voxel_volume_mm3() / 1000:.0f} ml; printed block {ml:.0f} ml",
    )


def _spine_block(bone: np.ndarray, volume: Volume) -> np.ndarray:
    """The largest bone island inside a slab of SLAB_MM around the middle slice."""
    step = abs(volume.spacing[2])
    half = max(1, round(SLAB_MM / step / 2))
    middle = bone.shape[0] // 2
    block = np.zeros_like(bone)
    block[middle - half : middle + half] = bone[middle - half : middle + half]
    labels, count = ndimage.label(block)
    if count == 0:
        msg = "no bone found in the middle of the scan; is this a CT of the trunk or head?"
        raise MedPrintError(msg)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def _mesh(case: Case, volume: Volume, mask: np.ndarray) -> tuple[tuple[str, dict], str]:
    from app.printing.profiles import get_printer  # noqa: PLC0415
    from app.tools.mesh.case_mesh import mesh_for_print  # noqa: PLC0415

    printer = get_printer(DEMO_PRINTER)
    smoothing, reduction = _mesh_settings(volume)
    made = mesh_for_print(
        case,
        mask,
        volume,
        part="spine",
        build_volume_mm=printer.build_volume,
        smoothing=smoothing,
        reduction=reduction,
    )
    qa = made.qa.to_dict()
    verdict = "pass" if made.qa.passed else "FAIL"
    deviation = qa["deviation"]
    text = f"{made.stored}: {len(made.mesh.faces)} triangles, smoothing {smoothing:g}, "
    text += f"deviation p95 {deviation['p95_mm']:.2f} mm, QA {verdict}"
    return (made.stored, qa), text


def _mesh_settings(volume: Volume) -> tuple[float, float]:
    """Smoothing and decimation that keep the model within QA's 0.5 mm tolerance.

    Coarse series (a voxel side over 2 mm, like the bundled sample's 6 mm slices) get lighter
    smoothing and decimation: smoothing a coarse staircase moves the surface further.
    """
    if max(volume.spacing) > 2.0:
        return 0.2, 0.5
    return 0.5, 0.8


def _approve(case: Case, mesh_name: str, qa: dict) -> tuple[None, str]:
    digest = access.sha256_hex(case.load_bytes(mesh_name))
    access.approve(case, digest, qa, DEMO_REVIEWER, comment="demo approval")
    return None, f"approved by {DEMO_REVIEWER} (mesh sha256 {digest[:12]}…)"


def _slice(case: Case, mesh_name: str) -> tuple[tuple[str, dict], str]:
    from app.printing.profiles import get_material, get_printer  # noqa: PLC0415
    from app.printing.slicer import Part, SliceSettings, slice_parts  # noqa: PLC0415
    from app.tools.mesh.store import load_mesh_version  # noqa: PLC0415

    number = int(mesh_name.removeprefix("mesh/v").removesuffix(".stl"))
    mesh, _ = load_mesh_version(case, number)
    printer, material = get_printer(DEMO_PRINTER), get_material(DEMO_MATERIAL)
    settings = SliceSettings()
    part = Part(f"{case.pseudonym} spine", mesh.vertices, mesh.faces)
    result = slice_parts([part], printer, material, settings)
    name = f"gcode/v{number}.gcode"
    case.save_bytes(name, result.gcode.encode("utf-8"))
    summary = result.summary
    facts = {"engine": result.engine, "printer": printer.id, "material": material.id}
    text = (
        f"{summary.layers} layers, {summary.filament_mm / 1000:.1f} m filament, {summary.time_text}"
    )
    return (name, facts), text


def _package(
    case: Case, out: Path, mesh_name: str, gcode_name: str, slicer_facts: dict, *, user: str
) -> tuple[Path, str]:
    from app.security.package import package_case  # noqa: PLC0415

    qa_name = mesh_name.removesuffix(".stl") + ".qa.json"
    stem = f"{case.pseudonym}-spine"
    path, _ = package_case(
        case,
        out,
        mesh=mesh_name,
        user=user,
        qa=qa_name,
        extra={gcode_name: f"gcode/{stem}.gcode"},
        printer={"profile": slicer_facts["printer"], "material": slicer_facts["material"]},
        slicer={"engine": slicer_facts["engine"]},
    )
    return path, f"{path.name} written and read back"


def _verify(package: Path) -> tuple[bool, str]:
    from app.security.package import verify_package  # noqa: PLC0415
    from app.security.signing import TrustStore  # noqa: PLC0415

    store = TrustStore(resolve_paths())
    result = verify_package(package, store.trusted(), store.revoked())
    if not result.ok:
        msg = f"the demo package did not verify: {result.message}"
        raise MedPrintError(msg)
    return True, "signature, manifest and every file verified"
