"""The column layout of a batch of spatial units, shared by ingest, the generator and the
release pipeline. Batches are pyarrow Tables; geometry is WKB in CGCS2000 (EPSG:4490)
longitude/latitude, and heights are metres (negative below ground)."""
from __future__ import annotations

import pyarrow as pa

STORAGE_CRS = "EPSG:4490"  # CGCS2000 geographic

UNIT_KINDS = ("room", "floor", "building", "parcel", "road", "pipe", "cable", "facility")
LINE_KINDS = frozenset({"road", "pipe", "cable"})  # 段: segments, LineString geometry
AREA_KINDS = frozenset({"room", "floor", "building", "parcel", "facility"})  # Polygon geometry

# Columns every unit has. Geometry is 2D; the vertical extent is z_min..z_max.
CORE = pa.schema(
    [
        pa.field("unit_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("geometry", pa.binary(), nullable=False),  # WKB, EPSG:4490 lon/lat
        pa.field("z_min", pa.float64(), nullable=False),
        pa.field("z_max", pa.float64(), nullable=False),
        pa.field("grid_code", pa.string()),  # filled by corpora.grid at ingest
    ]
)

# Attribute columns of the generated district (an ingested corpus may carry others).
ATTRIBUTES = pa.schema(
    [
        pa.field("district", pa.string()),  # 区, e.g. 浦东新区
        pa.field("neighbourhood", pa.string()),  # 街道/社区
        pa.field("building_id", pa.string()),  # join key of rooms/floors to their building
        pa.field("floor", pa.int16()),  # floor number (negative: basement); null for segments
        pa.field("area_m2", pa.float64()),
        pa.field("room_use", pa.string()),  # learnable label: residential/office/retail/...
        pa.field("build_year", pa.int16()),
        pa.field("household_size", pa.int16()),
        pa.field("monthly_rent", pa.float64()),  # a sensitive attribute
        pa.field("owner_name", pa.string()),  # direct identifiers ...
        pa.field("owner_id_number", pa.string()),
        pa.field("owner_phone", pa.string()),
        pa.field("occupant_name", pa.string()),
        pa.field("occupant_id_number", pa.string()),
        pa.field("address", pa.string()),
        pa.field("notes", pa.string()),  # free text that may hide PII
        pa.field("material", pa.string()),  # segments: pipe/cable material
        pa.field("diameter_mm", pa.float64()),  # segments
        pa.field("sensitive_category", pa.string()),  # e.g. military, power_substation; "" if none
    ]
)

UNIT_SCHEMA = pa.unify_schemas([CORE, ATTRIBUTES])
