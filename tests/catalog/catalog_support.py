"""Helpers shared by the catalogue tests (not a conftest: fixtures stay in tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

# Far enough from the generator's default origin (121.50, 31.23) that the two corpora share
# no level-16 grid cell and their extents do not meet.
WEST_ORIGIN = (121.30, 31.10)


def add_corpus(w, dataset, *, seed: int, rooms: int = 400, origin=WEST_ORIGIN, actor=None):
    """Record a generated corpus version of `dataset`, as the ingest task would."""
    from django.conf import settings

    from corpora import store
    from corpora.actions import record_corpus_version
    from corpora.generator import generate_district

    scratch = Path(settings.STATE_DIR) / "scratch" / f"{dataset.slug}-{seed}-{rooms}.parquet"
    summary = store.write_corpus(generate_district(seed=seed, rooms=rooms, origin=origin), scratch)
    return record_corpus_version(actor=actor or w.steward, dataset=dataset, file=scratch, source="generator",
                                 source_crs="EPSG:4490", summary=summary)


def describe(w):
    """Give the world's datasets the metadata the search tests look for."""
    from catalog.actions import update_dataset_metadata

    update_dataset_metadata(
        actor=w.steward, dataset=w.rooms, title_en="Building rooms", description="房间单元，含用途与租金",
        description_en="Rooms with their use and monthly rent", theme="buildings", district="浦东新区",
        keywords=["房间", "rent"],
    )
    update_dataset_metadata(
        actor=w.steward, dataset=w.roads, title_en="Road segments", description="道路中心线段",
        description_en="Road centre lines", theme="transport", district="黄浦区", keywords=["交通", "roads"],
    )
    update_dataset_metadata(
        actor=w.steward, dataset=w.pipes, title_en="Underground pipes", theme="infrastructure",
        district="浦东新区", keywords=["管线"],
    )
    update_dataset_metadata(
        actor=w.other_steward, dataset=w.foreign, title_en="Shenzhen parcels", theme="land_use",
        district="南山区", keywords=["地块"],
    )
    for d in (w.rooms, w.roads, w.pipes, w.foreign):
        d.refresh_from_db()
    return w
