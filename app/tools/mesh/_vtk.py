"""The VTK classes the mesh tools use, each from its own ``vtkmodules`` library.

``import vtk`` loads every VTK module (1.5-3 s, rendering included); the mesh tools import this
namespace instead (``from app.tools.mesh import _vtk as vtk``), so ``vtk.vtkPolyData`` keeps its
name, and ``numpy_support`` from ``vtkmodules.util``. A class a tool starts to use is added here.
"""

from __future__ import annotations

from vtkmodules.vtkCommonCore import (
    VTK_STRING,
    VTK_UNSIGNED_CHAR,
    vtkCommand,
    vtkDoubleArray,
    vtkPoints,
    vtkSMPTools,
)
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonExecutionModel import vtkAlgorithm
from vtkmodules.vtkFiltersCore import (
    vtkFlyingEdges3D,
    vtkImplicitPolyDataDistance,
    vtkSurfaceNets3D,
    vtkTriangleFilter,
    vtkWindowedSincPolyDataFilter,
)
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D
from vtkmodules.vtkImagingStencil import vtkImageStencil, vtkPolyDataToImageStencil

__all__ = [
    "VTK_STRING",
    "VTK_UNSIGNED_CHAR",
    "vtkAlgorithm",
    "vtkCellArray",
    "vtkCommand",
    "vtkDiscreteFlyingEdges3D",
    "vtkDoubleArray",
    "vtkFlyingEdges3D",
    "vtkImageData",
    "vtkImageStencil",
    "vtkImplicitPolyDataDistance",
    "vtkPoints",
    "vtkPolyData",
    "vtkPolyDataToImageStencil",
    "vtkSMPTools",
    "vtkSurfaceNets3D",
    "vtkTriangleFilter",
    "vtkWindowedSincPolyDataFilter",
]
