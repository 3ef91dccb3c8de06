"""``medprint mesh`` headless: on an image file and on a case in the vault."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from app.case import Case
from app.cli import main
from app.commands.mesh import PRESET_NAMES
from app.errors import MeshError
from app.imaging.volume import Volume
from app.security import audit
from app.settings import resolve_paths
from app.tools.mesh.meshio import check_clean, read_mesh_file
from app.tools.mesh.pipeline import PRESETS
from app.workflow import users
from app.workflow.actor import Actor


def block_phantom() -> Volume:
    """A 96 x 48 x 32 mm block of 700 HU in air, on an oblique grid."""
    array = np.full((50, 80, 140), -1000, dtype=np.int16)
    array[9:41, 16:64, 22:118] = 700
    angle = np.deg2rad(10)
    direction = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    return Volume(
        array,
        origin=(-60.0, 10.0, 200.0),
        spacing=(1.0, 1.0, 1.0),
        direction=direction,
        modality="CT",
    )


@pytest.fixture
def phantom_nrrd(tmp_path):
    import SimpleITK as sitk

    path = tmp_path / "phantom.nrrd"
    sitk.WriteImage(block_phantom().to_sitk(), str(path))
    return path


def test_mesh_from_image_file_prints_qa_json(phantom_nrrd, tmp_path, capsys):
    out = tmp_path / "block.3mf"
    code = main(["mesh", "--volume", str(phantom_nrrd), "--threshold", "226", "--decimate", "0.5",
                 "--out", str(out), "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["qa"]
    assert report["qa"]["passed"] and report["qa"]["units"] == "mm"
    assert report["qa"]["volume_mm3"] == pytest.approx(96 * 48 * 32, rel=0.02)
    assert report["build"]["settings"]["label"] is False  # no case, no pseudonym label
    assert check_clean(out) == []
    vertices, _ = read_mesh_file(out)
    lo = block_phantom().index_to_lps(np.array([[22, 16, 9], [117, 63, 40]]) - 0.5)
    assert vertices[:, 2].min() == pytest.approx(lo[:, 2].min(), abs=0.3)


def test_mesh_errors_are_one_line(phantom_nrrd, tmp_path, capsys):
    assert main(["mesh", "--volume", str(phantom_nrrd), "--out", str(tmp_path / "x.stl")]) == 2
    assert "threshold" in capsys.readouterr().err
    assert main(["mesh", "--volume", str(phantom_nrrd), "--threshold", "226"]) == 2
    assert "--out FILE" in capsys.readouterr().err
    assert main(["mesh", "export", "C-7K3M-Q9", "--out", str(tmp_path)]) == 2
    assert "--version N" in capsys.readouterr().err
    assert main(["edit", "C-7K3M-Q9", "--version", "1", "--cut", "1,2:0,0,1"]) == 2
    assert "X,Y,Z:NX,NY,NZ" in capsys.readouterr().err


def test_an_unreadable_image_file_is_one_line(tmp_path, capsys):
    garbage = tmp_path / "garbage.nrrd"
    garbage.write_bytes(b"NRRD0004\nnot a header\n" + bytes(range(256)))
    out = tmp_path / "x.stl"
    for option in ("--volume", "--mask"):
        assert main(["mesh", option, str(garbage), "--threshold", "226", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == (
            "medprint: error: the volume file cannot be read; check that it is a valid NIfTI or "
            "NRRD file\n"
        )
    assert not out.exists()


def test_a_wrong_output_format_is_refused_before_the_build(tmp_path, capsys):
    garbage = tmp_path / "garbage.nrrd"  # the output is refused first: this is never read
    garbage.write_bytes(b"NRRD0004\nnot a header\n")
    args = ["mesh", "--volume", str(garbage), "--threshold", "226", "--out"]
    assert main([*args, str(tmp_path / "bone.xyz")]) == 2
    assert capsys.readouterr().err == (
        "medprint: error: .xyz is not a mesh format MedPrint reads; use STL, OBJ, PLY or 3MF\n"
    )
    assert main([*args, str(tmp_path / "bone.stl"), "--format", "step"]) == 2
    assert "unknown mesh format 'step'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [garbage]


def test_a_file_surface_is_refused_at_once_or_made_on_a_thread(phantom_nrrd):
    from app.tools.mesh.core import signed_volume
    from app.workflow.mesh_source import surface_ahead

    with pytest.raises(MeshError, match="--threshold takes LOW or LOW:HIGH"):
        surface_ahead(phantom_nrrd, "bone", None)
    with pytest.raises(MeshError, match="give a CASE, or --volume IMAGE with --threshold"):
        surface_ahead(phantom_nrrd, None, None)
    nothing = surface_ahead(phantom_nrrd, "5000", None)  # the error comes with the result
    with pytest.raises(MeshError, match="no voxel of the volume lies in 5000; lower"):
        nothing()
    made = surface_ahead(phantom_nrrd, "226:800", None)()
    assert made.grid.shape == block_phantom().shape
    assert made.grid.array.strides == (0, 0, 0)  # the grid only: the pixels are gone
    assert signed_volume(made.source.reference) == pytest.approx(96 * 48 * 32, rel=0.02)
    assert made.source.cleaning.islands_removed == 0


def test_the_mesh_parser_loads_no_mesh_library():
    """The file build reads its image while trimesh and VTK import, so building the parser
    must not import them; its --settings choices are the pipeline's presets."""
    code = (
        "import sys\nfrom app.cli import main\n"
        "try:\n    main(['mesh', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not loaded & {"trimesh", "vtkmodules", "SimpleITK", "scipy", "manifold3d"}
    assert set(PRESET_NAMES) == set(PRESETS)


@pytest.fixture
def block_case(data_dir, keystore_service, capsys):
    """A case holding the block phantom, segmented with the bone preset."""
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    pseudonym = actor.vault.create_case({"patient_name": "Doe^Jane", "patient_id": "MRN-77"})
    Case(actor.vault, pseudonym).save_volume(block_phantom())
    assert main(["segment", pseudonym, "--preset", "bone"]) == 0
    capsys.readouterr()
    return actor, pseudonym


def test_mesh_of_a_case_is_labelled_stored_edited_and_exported(block_case, tmp_path, capsys):
    actor, pseudonym = block_case
    folder = tmp_path / "exports"
    folder.mkdir()
    code = main(["mesh", pseudonym, "--segment", "bone", "--out", str(folder)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "QA PASS" in printed and f"{pseudonym}: mesh v1 (bone)" in printed
    assert f"label emboss {pseudonym}" in printed
    assert "Doe" not in printed and "MRN" not in printed
    [exported] = list(folder.iterdir())
    assert exported.name == f"{pseudonym}_bone.stl" and check_clean(exported) == []
    case = actor.case(pseudonym)
    assert case.mesh_versions() == [1]
    info = case.mesh_info(1)
    assert info["builds"]["bone"]["label"]["text"] == pseudonym
    assert info["settings"]["name"] == "print" and info["author"] == actor.user

    code = main(["edit", pseudonym, "--version", "1", "--mirror", "x", "--json"])
    edited = json.loads(capsys.readouterr().out)
    assert code == 0 and edited["version"] == 2 and edited["edit"]["parent_version"] == 1
    assert edited["sha256"] == case.mesh_sha256(2) != case.mesh_sha256(1)

    assert main(["mesh", "versions", pseudonym, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["number"], v["operation"], v["qa_passed"]) for v in listed] == [
        (1, "build", True),
        (2, "mirror", True),
    ]
    out = tmp_path / "mirrored.ply"
    assert main(["mesh", "export", pseudonym, "--version", "2", "--out", str(out)]) == 0
    assert check_clean(out) == [] and "mirrored.ply" in capsys.readouterr().out
    actions = [r["action"] for r in audit.read_records(actor.paths)]
    assert actions.count("mesh.build") == 1 and actions.count("mesh.edit") == 1
    assert actions.count("mesh.export") == 2
