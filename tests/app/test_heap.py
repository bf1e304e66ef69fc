"""A served process settles its heap after startup (app.main.settle_heap); the many apps
a test process builds leave the collector as they found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.main import GC_YOUNG_THRESHOLD, create_app
from app.settings import Settings


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the test process's collector back however the test leaves it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
@pytest.mark.parametrize("served", [True, False])
async def test_only_a_served_app_freezes_its_startup_heap(settings: Settings, served: bool) -> None:
    gc.unfreeze()
    app = create_app(settings, served=served)
    async with app.router.lifespan_context(app):
        frozen, young = gc.get_freeze_count(), gc.get_threshold()[0]
    if served:
        # Everything startup built is out of the collector's sight, and the young
        # generation is collected 20,000 allocations apart instead of 700.
        assert frozen > 10_000
        assert young == GC_YOUNG_THRESHOLD
    else:
        assert frozen == 0
        assert young != GC_YOUNG_THRESHOLD
