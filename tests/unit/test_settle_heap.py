"""settle_heap (cli/runner.py): what ``postroom serve`` does to the cyclic GC once started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from postroom.cli.runner import GC_YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The test process's GC as it was: thresholds back, nothing left frozen."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_start_up_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    tracked = len(gc.get_objects())
    settle_heap()
    # everything tracked before is frozen (a collection may have freed a few meanwhile)
    assert gc.get_freeze_count() >= tracked // 2
    assert gc.get_objects(generation=2) == []
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, old)
