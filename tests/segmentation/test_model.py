"""The Segmentation model: segments, edits, overlap, locks, undo/redo, events, storage."""

from __future__ import annotations

import io

import numpy as np
import pytest

from app.errors import SegmentationError
from app.tools.segmentation import Grid, Segmentation, storage
from app.tools.segmentation.base import load_tools
from app.tools.segmentation.params import specs, validate
from app.tools.segmentation.threshold import ThresholdParams

GRID = Grid((20, 30, 40), origin=(1.0, 2.0, 3.0), spacing=(0.5, 0.7, 2.5))


def box(mask_shape=(20, 30, 40), where=(slice(2, 8), slice(3, 9), slice(4, 12))):
    m = np.zeros(mask_shape, dtype=bool)
    m[where] = True
    return m


def test_add_modify_and_mask_with_offsets():
    seg = Segmentation(GRID)
    a = seg.add_segment("liver")
    assert seg.labels.dtype == np.uint8 and seg.is_empty("liver")
    changed = seg.modify(a, np.ones((2, 3, 4), bool), "add", offset=(5, 6, 7))
    assert changed == 24
    assert seg.bbox("liver") == (slice(5, 7), slice(6, 9), slice(7, 11))
    seg.modify("liver", np.ones((1, 1, 1), bool), "remove", offset=(5, 6, 7))
    assert seg.voxel_count(a) == 23
    # "set" replaces the whole segment, also outside the given box
    seg.modify("liver", np.ones((1, 2, 2), bool), "set", offset=(0, 0, 0))
    assert seg.voxel_count("liver") == 4
    assert seg.bbox("liver") == (slice(0, 1), slice(0, 2), slice(0, 2))


def test_segments_overlap_by_default_and_exclusive_on_request():
    seg = Segmentation(GRID)
    a, b = seg.add_segment("a"), seg.add_segment("b")
    seg.modify(a, box())
    seg.modify(b, box(where=(slice(5, 10), slice(3, 9), slice(4, 12))))
    overlap = seg.mask(a) & seg.mask(b)
    assert overlap.sum() == 3 * 6 * 8
    seg.overwrite_other_segments = True
    seg.modify(b, box(where=(slice(0, 3), slice(3, 9), slice(4, 12))), "add")
    assert not (seg.mask(a) & seg.mask(b))[0:3].any()
    # a locked segment keeps its voxels even when another paints over it exclusively
    seg.update_segment(a, locked=True)
    before = seg.mask(a).copy()
    seg.modify(b, np.ones(GRID.shape, bool), "add")
    assert np.array_equal(seg.mask(a), before)


def test_many_segments_widen_the_label_type_and_keep_voxels():
    seg = Segmentation(GRID)
    for n in range(9):
        s = seg.add_segment(f"s{n}")
        seg.modify(s, np.ones((1, 1, 1), bool), "add", offset=(n, 0, 0))
    assert seg.labels.dtype == np.uint16
    assert all(seg.voxel_count(f"s{n}") == 1 for n in range(9))
    labels, _segs = seg.label_map()
    assert [labels[n, 0, 0] for n in range(9)] == list(range(1, 10))


def test_bad_input_changes_nothing():
    seg = Segmentation(GRID)
    a = seg.add_segment("a")
    seg.modify(a, box())
    before = seg.labels.copy()
    depth = len(seg.history.undo_stack)
    with pytest.raises(SegmentationError, match="does not fit"):
        seg.modify(a, np.ones((20, 30, 41), bool))
    with pytest.raises(SegmentationError, match="does not fit"):
        seg.modify(a, np.ones((2, 2, 2), bool), offset=(19, 0, 0))
    with pytest.raises(SegmentationError, match="3D"):
        seg.modify(a, np.ones((30, 40), bool))
    with pytest.raises(SegmentationError, match="no segment named"):
        seg.modify("nope", box())
    seg.update_segment(a, locked=True)
    with pytest.raises(SegmentationError, match="locked"):
        seg.modify(a, box(), "remove")
    with pytest.raises(SegmentationError, match="locked"):
        seg.remove_segment(a)
    assert np.array_equal(seg.labels, before)
    assert len(seg.history.undo_stack) == depth


def test_undo_redo_restore_exact_labels_and_segments():
    seg = Segmentation(GRID)
    rng = np.random.default_rng(1)
    states = [(seg.labels.copy(), [s.name for s in seg.segments])]
    a = seg.add_segment("a")
    states.append((seg.labels.copy(), ["a"]))
    for _ in range(5):
        seg.modify(a, rng.random(GRID.shape) > 0.7, "add")
        states.append((seg.labels.copy(), ["a"]))
    seg.remove_segment(a)
    states.append((seg.labels.copy(), []))
    for labels, names in reversed(states[:-1]):
        assert seg.undo()
        assert np.array_equal(seg.labels, labels)
        assert [s.name for s in seg.segments] == names
    assert not seg.undo()
    for labels, names in states[1:]:
        assert seg.redo()
        assert np.array_equal(seg.labels, labels)
        assert [s.name for s in seg.segments] == names
    assert not seg.redo()


def test_stroke_is_one_undo_step_and_rolls_back_on_error():
    seg = Segmentation(GRID)
    a = seg.add_segment("a")
    empty = seg.labels.copy()
    seg.begin_stroke("paint")
    for n in range(10):
        seg.modify(a, np.ones((1, 2, 2), bool), "add", offset=(n, n, n))
    seg.end_stroke()
    assert seg.history.undo_description == "paint"
    assert len(seg.history.undo_stack[-1].diffs) == 1  # the dabs were merged
    assert seg.voxel_count(a) == 40
    seg.undo()
    assert np.array_equal(seg.labels, empty)
    with pytest.raises(RuntimeError), seg.group("failing tool"):
        seg.modify(a, box(), "add")
        raise RuntimeError("boom")
    assert np.array_equal(seg.labels, empty)
    assert seg.history.redo_description == "paint"  # the failed tool left no trace


def test_history_is_bounded_and_keeps_the_newest():
    seg = Segmentation(GRID, history_mib=0.01)  # ~10 KiB
    a = seg.add_segment("a")
    rng = np.random.default_rng(2)
    for _ in range(20):
        seg.modify(a, rng.random(GRID.shape) > 0.5, "set")
    assert seg.history.nbytes <= 64 << 10 or len(seg.history.undo_stack) == 1
    assert seg.history.dropped > 0
    before_undo = seg.labels.copy()
    assert seg.undo()
    assert not np.array_equal(seg.labels, before_undo)


def test_events_tell_views_what_changed():
    seg = Segmentation(GRID)
    events = []
    unsubscribe = seg.subscribe(events.append)
    a = seg.add_segment("a")
    seg.modify(a, np.ones((2, 2, 2), bool), "add", offset=(3, 4, 5))
    kinds = [e.kind for e in events]
    assert "segments" in kinds and "labels" in kinds and "history" in kinds
    labels_event = next(e for e in events if e.kind == "labels")
    assert labels_event.box == (slice(3, 5), slice(4, 6), slice(5, 7))
    assert labels_event.segment_ids == (a.id,)
    unsubscribe()
    seg.undo()
    assert len(events) == len(kinds)


def test_storage_round_trip_and_damage_is_refused():
    seg = Segmentation(GRID)
    a = seg.add_segment("bone", (0.9, 0.8, 0.5))
    b = seg.add_segment("implant")
    seg.modify(a, box())
    seg.modify(b, box(where=(slice(5, 6), slice(0, 30), slice(0, 40))))
    seg.update_segment(b, visible=False, locked=True)
    data = storage.to_bytes(seg)
    assert len(data) < 2000  # 24000 voxels compress to a few hundred bytes
    back = storage.from_bytes(data)
    assert back.grid == seg.grid
    assert np.array_equal(back.labels, seg.labels)
    assert [(s.id, s.name, s.color, s.visible, s.locked) for s in back.segments] == [
        (s.id, s.name, s.color, s.visible, s.locked) for s in seg.segments
    ]
    assert back.add_segment("new").id not in {a.id, b.id}
    damaged = bytearray(data)
    damaged[-20] ^= 0xFF
    with pytest.raises(SegmentationError):
        storage.from_bytes(bytes(damaged))
    with pytest.raises(SegmentationError, match="truncated"):
        storage.read_segmentation(io.BytesIO(data[:-10]))
    with pytest.raises(SegmentationError, match="not a MedPrint segmentation"):
        storage.from_bytes(b"NRRD0004\n")


def test_params_have_ranges_and_validation_names_the_field():
    fields = {s.name: s for s in specs(ThresholdParams)}
    assert fields["lower"].unit == "HU" and fields["lower"].kind == "float"
    assert "bone" in fields["preset"].choices
    with pytest.raises(SegmentationError, match="Lower percentile"):
        validate(ThresholdParams(percentile_low=120))
    with pytest.raises(SegmentationError, match="not one of"):
        validate(ThresholdParams(preset="unobtainium"))
    with pytest.raises(SegmentationError, match="wrong type"):
        validate(ThresholdParams(lower="a lot"))
    with pytest.raises(SegmentationError, match="not a number"):
        validate(ThresholdParams(lower=float("nan")))


def test_registry_reports_a_broken_tool_and_loads_the_rest():
    registry = load_tools(("threshold", "no_such_tool", "margin"))
    assert set(registry.names()) == {"threshold", "margin", "hollow"}
    assert "no_such_tool" in registry.errors
    with pytest.raises(SegmentationError, match="failed to load"):
        registry.get("no_such_tool")


def test_big_edits_are_compressed_in_the_background_and_undo_exactly():
    from app.tools.segmentation import history

    seg = Segmentation(Grid((64, 384, 384)))
    a = seg.add_segment("a")
    rng = np.random.default_rng(4)
    mask = rng.random(seg.grid.shape) > 0.5
    seg.modify(a, mask)
    change = seg.history.undo_stack[-1]
    history._COMPRESSOR.submit(lambda: None).result()  # wait for the queue to drain
    assert all(isinstance(p, bytes) for d in change.diffs for p in d.planes.values())
    assert seg.undo() and not seg.labels.any()
    assert seg.redo() and np.array_equal(seg.mask(a), mask)


@pytest.mark.parametrize("shape", [(20, 30, 40), (9, 7, 5), (300, 3, 3)])
@pytest.mark.parametrize("mode", ["set", "add", "remove"])
def test_slab_edits_equal_whole_mask_edits(shape, mode, monkeypatch):
    """modify_slabs gives the labels, counts, boxes and undo steps modify gives, on grids whose
    slices are not whole bytes of packed bits, for a segment on a high bit of uint16 labels."""
    from app.tools.segmentation import model

    monkeypatch.setattr(model, "_SLAB_VOXELS", 64)  # many slabs even on these small grids
    rng = np.random.default_rng(7)
    start = rng.random(shape) > 0.7
    mask = np.zeros(shape, bool)
    mask[1:-1, 1:, :-1] = rng.random((shape[0] - 2, shape[1] - 1, shape[2] - 1)) > 0.4
    results = []
    for slabbed in (False, True):
        seg = Segmentation(Grid(shape))
        for n in range(10):  # uint16 labels; "s9" owns bit 9
            seg.add_segment(f"s{n}")
        seg.modify("s3", ~start)  # other bits must survive untouched
        seg.modify("s9", start)
        before = seg.labels.copy()
        if slabbed:
            changed = seg.modify_slabs("s9", lambda ks: mask[ks], mode)
        else:
            changed = seg.modify("s9", mask, mode)
        results.append((changed, seg.labels.copy(), seg.bbox("s9")))
        assert seg.undo() and np.array_equal(seg.labels, before)
        assert seg.redo() and np.array_equal(seg.labels, results[-1][1])
    (count, labels, bbox), (slab_count, slab_labels, slab_bbox) = results
    assert slab_count == count > 0
    assert np.array_equal(slab_labels, labels) and slab_bbox == bbox


def test_slab_edit_of_an_empty_segment_knows_its_tight_box():
    seg = Segmentation(Grid((40, 16, 16)))
    a = seg.add_segment("a")
    mask = box((40, 16, 16), (slice(13, 29), slice(2, 5), slice(7, 8)))
    events = []
    seg.subscribe(events.append)
    assert seg.modify_slabs(a, lambda ks: mask[ks]) == 16 * 3
    where = (slice(13, 29), slice(2, 5), slice(7, 8))
    assert seg._boxes[a.id] == where and a.id in seg._exact  # bbox() needs no pass
    assert [e.box for e in events if e.kind == "labels"] == [where]
    assert seg.modify_slabs(a, lambda ks: mask[ks], "add") == 0


def test_a_failing_slab_pass_changes_nothing():
    seg = Segmentation(Grid((64, 100, 100)))
    a = seg.add_segment("a")
    seg.modify(a, box((64, 100, 100), (slice(0, 64), slice(0, 50), slice(0, 100))))
    before = seg.labels.copy()

    def mask_of(ks):
        if ks.start >= 40:
            raise MemoryError
        return np.ones((ks.stop - ks.start, 100, 100), bool)

    with pytest.raises(MemoryError):
        seg.modify_slabs(a, mask_of, "set")
    assert np.array_equal(seg.labels, before) and len(seg.history.undo_stack) == 2


def test_exclusive_slab_edits_take_voxels_from_the_others():
    seg = Segmentation(GRID)
    a, b = seg.add_segment("a"), seg.add_segment("b")
    seg.modify(a, box())
    seg.overwrite_other_segments = True
    full = np.ones(GRID.shape, bool)
    assert seg.modify_slabs(b, lambda ks: full[ks]) == full.size
    assert seg.is_empty(a)
