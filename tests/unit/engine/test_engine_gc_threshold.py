"""A worker raises the collector's first threshold while it runs and puts it back after."""

from __future__ import annotations

import gc

from squall.engine.runner import GC_YOUNG_THRESHOLD, fewer_collections


def test_threshold_is_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with fewer_collections(GC_YOUNG_THRESHOLD):
        inside = gc.get_threshold()
        assert inside == (max(GC_YOUNG_THRESHOLD, before[0]), *before[1:])
    assert gc.get_threshold() == before


def test_a_threshold_changed_by_someone_else_meanwhile_is_left_alone() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections(GC_YOUNG_THRESHOLD):
            gc.set_threshold(1234, before[1], before[2])
        assert gc.get_threshold() == (1234, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def test_a_higher_threshold_is_never_lowered() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(GC_YOUNG_THRESHOLD * 2, before[1], before[2])
        with fewer_collections(GC_YOUNG_THRESHOLD):
            assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD * 2
    finally:
        gc.set_threshold(*before)
