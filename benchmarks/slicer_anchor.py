"""The 3D Slicer-style surface pipeline as one process: the anchor of the mesh benchmark.

``python -m benchmarks.slicer_anchor IMAGE LOW OUT.stl``: SimpleITK read -> threshold at LOW
(a 0/1 label map) -> vtkDiscreteFlyingEdges3D -> vtkWindowedSincPolyDataFilter (40
iterations, passband 0.01: Slicer's smoothing 0.5, normalised coordinates, non-manifold
smoothing) -> fast-simplification removing 80 % of the triangles -> binary STL. VTK's SMP
backend is STDThread, as in Slicer's own (TBB) builds. Prints the triangle count.
"""

from __future__ import annotations

import sys

import numpy as np


def main(source: str, low: float, out: str) -> int:
    import fast_simplification
    import SimpleITK as sitk
    import vtk
    from vtk.util import numpy_support

    vtk.vtkSMPTools.SetBackend("STDThread")
    image = sitk.ReadImage(source)
    labels = sitk.BinaryThreshold(image, lowerThreshold=low, upperThreshold=32767)
    del image
    data = vtk.vtkImageData()
    data.SetDimensions(*labels.GetSize())
    data.SetSpacing(*labels.GetSpacing())
    data.SetOrigin(*labels.GetOrigin())
    array = sitk.GetArrayViewFromImage(labels).ravel()
    data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array, deep=False))
    surface = vtk.vtkDiscreteFlyingEdges3D()
    surface.SetInputData(data)
    surface.SetValue(0, 1)
    surface.ComputeNormalsOff()
    surface.ComputeGradientsOff()
    surface.ComputeScalarsOff()
    smoother = vtk.vtkWindowedSincPolyDataFilter()
    smoother.SetInputConnection(surface.GetOutputPort())
    smoother.SetNumberOfIterations(40)
    smoother.SetPassBand(0.01)
    smoother.BoundarySmoothingOff()
    smoother.FeatureEdgeSmoothingOff()
    smoother.NonManifoldSmoothingOn()
    smoother.NormalizeCoordinatesOn()
    smoother.Update()
    poly = smoother.GetOutput()
    points = numpy_support.vtk_to_numpy(poly.GetPoints().GetData())
    faces = numpy_support.vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    points, faces = fast_simplification.simplify(points, faces, target_reduction=0.8)
    _write_stl(out, points, faces)
    print(len(faces))
    return 0


def _write_stl(path: str, points: np.ndarray, faces: np.ndarray) -> None:
    tri = points[faces].astype(np.float32)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    record = np.zeros(len(faces), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    record["n"], record["v"] = normals, tri
    with open(path, "wb") as f:
        f.write(b"\0" * 80 + np.uint32(len(faces)).tobytes())
        f.write(record.tobytes())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), sys.argv[3]))
