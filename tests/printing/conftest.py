"""Fixtures of the slicing tests: profiles, simple solids, a T-shaped overhang piece, real bone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from app.printing.profiles import MaterialProfile, PrinterProfile, get_material, get_printer
from app.printing.slicer import Part


@pytest.fixture
def generic_printer(data_dir: Path) -> PrinterProfile:
    return get_printer("generic-marlin-220")


@pytest.fixture
def pla(data_dir: Path) -> MaterialProfile:
    return get_material("pla")


@pytest.fixture(scope="session")
def cube_part() -> Part:
    mesh = trimesh.creation.box((20.0, 20.0, 20.0))
    return Part.from_trimesh("MP-TEST cube", mesh)


@pytest.fixture(scope="session")
def sphere_part() -> Part:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=12.0)
    return Part.from_trimesh("MP-TEST sphere", mesh)


@pytest.fixture(scope="session")
def t_shape_part() -> Part:
    """A 10x10x20 mm stem under 40x10x5 mm arms: the arms overhang, the stem stands on the bed."""
    stem = trimesh.creation.box((10.0, 10.0, 20.0))
    stem.apply_translation((0, 0, 10.0))
    arms = trimesh.creation.box((40.0, 10.0, 5.0))
    arms.apply_translation((0, 0, 22.5))
    return Part.from_trimesh("MP-TEST tee", trimesh.util.concatenate([stem, arms]))


def bone_mesh(folder: Path, crop: tuple[slice, slice, slice], target_faces: int) -> trimesh.Trimesh:
    """A bone surface from real CT: 226 HU iso-surface (VTK flying edges) of a cropped block,
    1 mm voxels, largest connected piece, decimated to about ``target_faces`` triangles."""
    import fast_simplification
    import SimpleITK as sitk
    import vtk
    from vtk.util import numpy_support

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetGlobalWarningDisplay(False)
    image = sitk.Cast(reader.Execute()[crop], sitk.sitkFloat32)
    size = [round(n * s) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    image = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        (1.0, 1.0, 1.0),
        image.GetDirection(),
        -1000.0,
    )
    voxels = np.pad(sitk.GetArrayFromImage(image), 2, constant_values=-1000.0)
    grid = vtk.vtkImageData()
    grid.SetDimensions(voxels.shape[2], voxels.shape[1], voxels.shape[0])
    grid.GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels.ravel(), deep=True))
    surface = vtk.vtkFlyingEdges3D()
    surface.SetInputData(grid)
    surface.SetValue(0, 226.0)
    largest = vtk.vtkPolyDataConnectivityFilter()
    largest.SetInputConnection(surface.GetOutputPort())
    largest.SetExtractionModeToLargestRegion()
    clean = vtk.vtkCleanPolyData()
    clean.SetInputConnection(largest.GetOutputPort())
    clean.Update()
    poly = clean.GetOutput()
    points = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    faces = numpy_support.vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    if len(faces) > target_faces:
        points, faces = fast_simplification.simplify(
            points.astype(np.float32), faces.astype(np.int32), 1 - target_faces / len(faces)
        )
    return trimesh.Trimesh(points, faces, process=True)


@pytest.fixture(scope="session")
def vertebra_part(dicom_dir: Path) -> Part:
    """A block of lumbar spine from the TCIA abdomen CT (real bone, ~20k triangles)."""
    folder = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    mesh = bone_mesh(folder, (slice(180, 330), slice(300, 420), slice(60, 75)), 20_000)
    return Part.from_trimesh("MP-TEST vertebra", mesh)
