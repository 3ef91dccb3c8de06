"""Helpers for the store-back tests (headless and GUI): an approved coloured two-part version
with a saved segmentation, and removing from Orthanc what a test stored."""

from __future__ import annotations

import urllib.request

import numpy as np

from app.case import Case
from app.workflow import review, segment
from tests.workflow.conftest import REVIEWER, TECH
from tests.workflow.mesh_versions import sphere_qa, sphere_stl

COLOURS = {"bone": "#e6dcc8", "vessel": "#c83232"}


def coloured_version(people, case: Case, *, segmentation: bool = True) -> int:
    """Two coloured parts by the technician (and a saved one-segment segmentation); approved
    by the reviewer. The version's number."""
    tech = people[TECH]
    if segmentation:
        volume = case.load_volume()
        seg = segment.new(volume)
        mask = np.zeros(volume.shape, dtype=bool)
        mask[60:70, 200:260, 220:300] = True
        segment.add_segment_from_mask(tech, case, seg, "liver", mask)
        segment.save(tech, case, seg)
    version = case.save_mesh_version(
        {"bone": sphere_stl(10.0), "vessel": sphere_stl(5.0)},
        qa=sphere_qa(),
        info={"author": TECH, "part": "bone"},
        styles={name: {"colour": colour} for name, colour in COLOURS.items()},
    )
    review.approve(people[REVIEWER], case, version)
    return version


def delete_new(orthanc, before: set[str]) -> None:
    """Delete the instances Orthanc holds now that were not in ``before``."""
    for instance in set(orthanc.get("/instances")) - before:
        request = urllib.request.Request(f"{orthanc.url}/instances/{instance}", method="DELETE")
        urllib.request.urlopen(request, timeout=10).close()
