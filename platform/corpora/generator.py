"""Seeded synthetic district (合成街区): buildings, floors, rooms, parcels, road/pipe/cable
segments and sensitive facilities around a Shanghai origin, with zh_CN identities that look
real (valid ID-card check digits, phones, PII hidden in notes) and a learnable room_use /
monthly_rent signal for the training issue.

The district is built from fixed-size blocks (街坊) of BLOCK_ROOMS rooms, each drawn from its
own generator seeded by (seed, block index). A chunk is a run of whole blocks, so chunks are
independent, can be produced in any order, and the data (ids included) for a given seed and
room count does not depend on the chunk size. Randomness is drawn per block into numeric
arrays; strings, WKB and the Arrow table are rendered once per chunk, vectorised.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from corpora.identity import id_check_digits
from corpora.schema import UNIT_SCHEMA

ORIGIN = (121.50, 31.23)  # lon/lat of the district centre: Shanghai, near the Bund
BLOCK_ROOMS = 2_000
BLOCK_COLS = 16  # blocks per east-west row of the district
LOT = 90.0  # lot pitch (m); streets run along lot lines
LOT_COLS, LOT_ROWS = 5, 3
LOTS = LOT_COLS * LOT_ROWS
STREET_HALF = 5.0  # a parcel is its lot inset by half a street
LOT_AREA = (LOT - 2 * STREET_HALF) ** 2
SETBACK = 3.0  # a building keeps this far inside its parcel
MAX_BUILDINGS = 12  # per block, leaving lots for a facility and green space
MAX_FLOORS = 40
FACILITY_EVERY = 5  # every 5th block (block 0 included) hosts a sensitive facility
ZONE_SHARE = 0.3  # share of rooms flagged in buildings next to a facility
LABEL_NOISE = 0.12
PII_SHARE = 0.2
VACANT_SHARE = 0.08
OWNER_OCCUPIED_SHARE = 0.35
HOUSEHOLD_P = (0.25, 0.3, 0.25, 0.13, 0.07)  # 1..5 people in an occupied home

USES = ("residential", "office", "retail", "restaurant", "clinic", "storage")
RES, OFF, RET, RST, CLI, STO = range(len(USES))
USE_RENT = np.array([1.0, 1.25, 1.8, 1.6, 1.3, 0.4])  # rent multiplier by use

CHARACTERS = ("residential", "mixed", "business", "commercial")
RESIDENTIAL, MIXED, BUSINESS, COMMERCIAL = range(len(CHARACTERS))
UNIT_SIZE = np.array([(25, 80), (20, 90), (35, 110), (20, 100)], dtype=float)  # m² a room
OLDEST_BUILD = np.array([1955, 1950, 1990, 1930])

# District, ID-card region code, road names, and neighbourhoods as
# (name, character, base rent in yuan per m² per month).
DISTRICTS = (
    ("浦东新区", "310115",
     ("世纪大道", "张杨路", "浦东南路", "东方路", "峨山路", "商城路"),
     (("陆家嘴街道", BUSINESS, 260), ("张江镇", BUSINESS, 150),
      ("花木街道", RESIDENTIAL, 140), ("塘桥街道", MIXED, 150))),
    ("徐汇区", "310104",
     ("漕溪北路", "虹桥路", "肇嘉浜路", "天钥桥路", "宜山路"),
     (("徐家汇街道", COMMERCIAL, 220), ("田林街道", RESIDENTIAL, 130),
      ("枫林路街道", MIXED, 160))),
    ("黄浦区", "310101",
     ("南京东路", "西藏中路", "河南中路", "复兴东路", "延安东路"),
     (("南京东路街道", COMMERCIAL, 280), ("外滩街道", BUSINESS, 300),
      ("豫园街道", COMMERCIAL, 230))),
    ("静安区", "310106",
     ("南京西路", "延安中路", "共和新路", "江场路", "威海路"),
     (("南京西路街道", COMMERCIAL, 270), ("静安寺街道", BUSINESS, 250),
      ("彭浦新村街道", RESIDENTIAL, 110))),
)
DISTRICT_NAMES = pa.array([d[0] for d in DISTRICTS])
REGION_CODES = np.array([int(d[1]) for d in DISTRICTS])
ROAD_NAMES = pa.array([r for d in DISTRICTS for r in d[2]])
DISTRICT_ROADS = np.cumsum([0] + [len(d[2]) for d in DISTRICTS])  # road index range by district
HOOD_NAMES = pa.array([h[0] for d in DISTRICTS for h in d[3]])
HOOD_CHARACTER = np.array([h[1] for d in DISTRICTS for h in d[3]])
HOOD_PRICE = np.array([h[2] for d in DISTRICTS for h in d[3]], dtype=float)
DISTRICT_HOODS = np.cumsum([0] + [len(d[3]) for d in DISTRICTS])

SENSITIVE = ("military", "power_substation", "water_plant", "government_secure")
SENSITIVE_NAMES = pa.array(("",) + SENSITIVE)  # index 0: not sensitive
FACILITY_NOTES = pa.array((
    "军事管理区，禁止拍摄", "110kV变电站，高压危险", "自来水厂取水设施", "涉密单位，谢绝参观",
))

SURNAMES = pa.array(list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田"
    "董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白"
    "邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
))
SURNAME_P = 1.0 / (np.arange(len(SURNAMES)) + 5.0)  # common surnames dominate, as in life
SURNAME_P /= SURNAME_P.sum()
GIVEN = pa.array(list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰文辉建国红梅鑫宇"
    "浩思雨欣佳婷晨子涵一诺嘉俊晓海燕林峰志斌雪琳颖丹慧云飞凯鹏博宁凤春亮"
    "成东彬"
) + [""])  # the last entry leaves a one-character given name
SINGLE_GIVEN = 0.3
BIRTH_FIRST = np.datetime64("1940-01-01")
BIRTH_DAYS = (np.datetime64("2005-12-31") - BIRTH_FIRST).astype(int) + 1
PLATE_LETTERS = pa.array(list("ABCDEFGHJKLMN"))

HARMLESS_NOTES = pa.array((
    "正常使用", "已完成年度消防检查", "租约已续签", "待维修：卫生间漏水", "空调外机已更换",
    "物业费已缴清", "近期无变更", "装修中", "新风系统已检修",
))
PII_NOTES = 4  # contact name+phone, ID number, licence plate, phone then name

PIPE_MATERIALS = ("ductile_iron", "pe", "steel", "concrete")
CABLE_MATERIALS = ("copper", "aluminium", "fibre")
MATERIALS = pa.array(("asphalt",) + PIPE_MATERIALS + CABLE_MATERIALS)
PIPE_DN = np.array([100, 150, 200, 300, 400, 600, 800, 1000, 1200], dtype=float)
CABLE_DN = np.array([50, 100, 150, 200], dtype=float)
SEGMENT_KINDS = ("road", "pipe", "cable")
SEGMENT_PREFIX = ("L", "G", "C")
SEGMENT_OFFSET = np.array([0.0, 3.0, -3.0])  # m beside the street centre line

# CGCS2000 ellipsoid, for metres-per-degree at the origin latitude.
_A, _F = 6378137.0, 1 / 298.257222101
_E2 = _F * (2 - _F)


def generate_district(
    *, seed: int, rooms: int, chunk_rooms: int = 50_000, origin: tuple[float, float] = ORIGIN
) -> Iterator[pa.Table]:
    """Yield UNIT_SCHEMA tables of whole blocks, about chunk_rooms rooms each (at least one
    block), so memory stays bounded by the chunk size however many rooms there are."""
    _check(seed, rooms)
    for index in range(chunk_count(rooms, chunk_rooms)):
        yield generate_chunk(seed=seed, rooms=rooms, index=index, chunk_rooms=chunk_rooms, origin=origin)


def generate_pipe_network(*, seed: int, count: int) -> pa.Table:
    """``count`` underground pipe segments (段) around Pudong: polylines of 2 to 4 vertices,
    each where no other is, as a UNIT_SCHEMA table. Unlike rooms, which stack floor on floor
    with one footprint, every segment can be told apart by its geometry alone."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(count)))
    i = np.arange(count)
    x0 = 121.50 + (i % side) * 0.0009 + rng.uniform(0, 0.0003, count)  # ~85 m apart
    y0 = 31.22 + (i // side) * 0.0008 + rng.uniform(0, 0.0003, count)
    steps = rng.uniform(-0.0002, 0.0002, (count, 3, 2))
    vertices = rng.integers(2, 5, count)
    lines = [
        shapely.LineString(
            np.vstack([[x0[k], y0[k]], [x0[k], y0[k]] + np.cumsum(steps[k, : vertices[k] - 1], axis=0)])
        )
        for k in range(count)
    ]
    depth = rng.uniform(1.0, 4.0, count)
    columns = {
        "unit_id": pa.array([f"pipe-{seed}-{k:05d}" for k in i]),
        "kind": pa.array(["pipe"] * count),
        "geometry": pa.array(shapely.to_wkb(np.array(lines, dtype=object)), pa.binary()),
        "z_min": pa.array(-depth - 0.3),
        "z_max": pa.array(-depth),
        "district": pa.array(["浦东新区"] * count),
        "neighbourhood": pa.array(["陆家嘴街道"] * count),
        "material": pa.array(rng.choice(["PE", "球墨铸铁", "钢"], count)),
        "diameter_mm": pa.array(rng.choice([100.0, 150.0, 200.0, 300.0], count)),
        "sensitive_category": pa.array([""] * count),
    }
    arrays = [columns.get(f.name, pa.nulls(count, f.type)).cast(f.type) for f in UNIT_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=UNIT_SCHEMA)


def district_units(seed: int, rooms: int) -> pa.Table:
    """The whole district as one table, for tests and demos of modest size."""
    return pa.concat_tables(generate_district(seed=seed, rooms=rooms))


def chunk_count(rooms: int, chunk_rooms: int = 50_000) -> int:
    return -(-_block_count(rooms) // _blocks_per_chunk(chunk_rooms))


def generate_chunk(
    *, seed: int, rooms: int, index: int, chunk_rooms: int = 50_000, origin: tuple[float, float] = ORIGIN
) -> pa.Table:
    """One chunk, from (seed, index) alone: workers may produce chunks in any order."""
    _check(seed, rooms)
    per_chunk = _blocks_per_chunk(chunk_rooms)
    first = index * per_chunk
    blocks = range(first, min(first + per_chunk, _block_count(rooms)))
    if not blocks:
        raise IndexError(f"chunk {index} is past the end of the district")
    drawn = [_draw_block(seed, b, min(BLOCK_ROOMS, rooms - b * BLOCK_ROOMS)) for b in blocks]
    parts = {kind: {key: np.concatenate([d[kind][key] for d in drawn]) for key in drawn[0][kind]}
             for kind in drawn[0]}
    frame = _Frame(origin)
    return pa.concat_tables([
        _render_rooms(parts["room"], frame),
        _render_floors(parts["floor"], frame),
        _render_buildings(parts["building"], frame),
        _render_parcels(parts["parcel"], frame),
        _render_facilities(parts["facility"], frame),
        _render_segments(parts["segment"], frame),
    ])


def _check(seed: int, rooms: int) -> None:
    if seed < 0 or rooms < 1:
        raise ValueError(f"need seed >= 0 and rooms >= 1, not seed={seed}, rooms={rooms}")


def _block_count(rooms: int) -> int:
    return -(-rooms // BLOCK_ROOMS)


def _blocks_per_chunk(chunk_rooms: int) -> int:
    return max(1, chunk_rooms // BLOCK_ROOMS)


# ---------------------------------------------------------------------------------------
# Drawing: one block's numbers, in metres east/north of the origin.


def _locate(seed: int, col: int, row: int) -> tuple[int, int]:
    """District and neighbourhood of a block. Districts cover 8x4-block tiles (adjacent
    tiles differ) and neighbourhoods 2x2-block tiles inside them, so both are contiguous."""
    order = np.random.default_rng([seed, 1]).permutation(len(DISTRICTS))
    district = int(order[(col // 8 + 2 * (row // 4)) % len(DISTRICTS)])
    tile = np.random.default_rng([seed, 2, col // 2, row // 2 + (1 << 20)])
    hood = int(tile.integers(DISTRICT_HOODS[district], DISTRICT_HOODS[district + 1]))
    return district, hood


def _draw_block(seed: int, block: int, n: int) -> dict[str, dict[str, np.ndarray]]:
    """All numbers of one block of n rooms, keyed by unit kind then column."""
    rng = np.random.default_rng([seed, block])
    col, ring = block % BLOCK_COLS, block // BLOCK_COLS
    row = (ring + 1) // 2 * (1 if ring % 2 else -1)  # rows alternate north and south of the origin
    district, hood = _locate(seed, col, row)
    character = HOOD_CHARACTER[hood]
    bx, by = (col - BLOCK_COLS // 2) * LOT_COLS * LOT, row * LOT_ROWS * LOT  # block's south-west corner
    roads = rng.integers(DISTRICT_ROADS[district], DISTRICT_ROADS[district + 1], 2)  # east-west, north-south
    door_base = int(rng.integers(500))
    facility_lot = int(rng.integers(LOTS)) if block % FACILITY_EVERY == 0 else -1

    b = _draw_buildings(rng, n, character, facility_lot)
    lot_x, lot_y = bx + (b["lot"] % LOT_COLS) * LOT, by + (b["lot"] // LOT_COLS) * LOT
    b["gx"] += lot_x
    b["gy"] += lot_y
    b["key"] = block * 100 + b["lot"]
    b["door"] = 1 + 2 * (door_base + b["lot"])
    b["road"] = np.full(len(b["lot"]), roads[0])
    f = _expand_floors(b)
    r = _expand_rooms(b, f)
    rb, rf = r["b"], r["floor"]

    level = f["level"][rf]
    use = _room_use(level, r["area"], character)
    use = np.where(rng.random(n) < LABEL_NOISE, rng.integers(len(USES), size=n), use)
    floor_factor = np.where(level < 0, 0.6, 1 + 0.01 * np.minimum(level, 30))
    age_factor = 0.8 + 0.4 * (b["year"][rb] - 1930) / 95
    noise = rng.lognormal(0, 0.15, n)
    rent = r["area"] * HOOD_PRICE[hood] * USE_RENT[use] * floor_factor * age_factor * noise
    vacant = rng.random(n) < VACANT_SHARE
    household = np.where((use == RES) & ~vacant, rng.choice(np.arange(1, 6), n, p=HOUSEHOLD_P), 0)
    owner = _draw_people(rng, n, district, "owner")
    occupant = _draw_people(rng, n, district, "occupant")
    owner_occupies = (use == RES) & (rng.random(n) < OWNER_OCCUPIED_SHARE)
    for key, value in occupant.items():
        value[owner_occupies] = owner[key.replace("occupant", "owner")][owner_occupies]
    notes = np.where(rng.random(n) < PII_SHARE, len(HARMLESS_NOTES) + rng.integers(PII_NOTES, size=n),
                     rng.integers(len(HARMLESS_NOTES), size=n))

    facility = _draw_facility(rng, block, bx, by, facility_lot)
    facility["door"] = 1 + 2 * (door_base + facility["lot"])
    facility["road"] = np.full(len(facility["lot"]), roads[0])
    sensitive = np.zeros(n, dtype=np.int8)
    if facility_lot >= 0:  # the sensitive zone: buildings on the lots around the facility
        fy, fx = divmod(facility_lot, LOT_COLS)
        near = np.maximum(abs(b["lot"] % LOT_COLS - fx), abs(b["lot"] // LOT_COLS - fy)) <= 1
        sensitive[near[rb] & (rng.random(n) < ZONE_SHARE)] = facility["category"][0]

    outline = ("gx", "gy", "w", "h", "nw", "nh", "lshape", "area", "year", "key", "door", "road")
    kinds = {
        "room": {
            "id": block * BLOCK_ROOMS + np.arange(n), "level": level, "z0": f["z0"][rf], "z1": f["z1"][rf],
            **{k: b[k][rb] for k in ("gx", "gy", "year", "key", "door", "road")},
            **{k: r[k] for k in ("x0", "x1", "y0", "y1", "area", "number")},
            "use": use, "rent": np.round(rent, -1), "household": household, "vacant": vacant,
            "sensitive": sensitive, "note": notes, **owner, **occupant,
            **_draw_people(rng, n, district, "contact"),
            "contact_plate": rng.integers(100_000, size=n),
            "contact_letter": rng.integers(len(PLATE_LETTERS), size=n),
        },
        "floor": {**{k: b[k][f["b"]] for k in outline}, **{k: f[k] for k in ("slot", "level", "z0", "z1")}},
        "building": {**{k: b[k] for k in outline},
                     "z0": f["z0"][b["first_floor"]], "z1": f["z1"][b["last_floor"]]},
        "parcel": {"gx": lot_x, "gy": lot_y, "z0": np.zeros(len(lot_x)), "z1": np.zeros(len(lot_x)),
                   **{k: b[k] for k in ("key", "door", "road")}},
        "facility": facility,
        "segment": _draw_segments(rng, n, block, bx, by, roads),
    }
    for columns in kinds.values():
        size = len(next(iter(columns.values())))
        columns["district"] = np.full(size, district, np.int8)
        columns["hood"] = np.full(size, hood, np.int8)
    return kinds


def _draw_facility(
    rng: np.random.Generator, block: int, bx: float, by: float, lot: int
) -> dict[str, np.ndarray]:
    """The block's sensitive facility, a walled compound filling its lot, or none (lot -1)."""
    count = int(lot >= 0)
    fy, fx = divmod(lot, LOT_COLS)
    return {"lot": np.full(count, lot), "key": np.full(count, block * 100 + lot),
            "gx": np.full(count, bx + fx * LOT), "gy": np.full(count, by + fy * LOT),
            "z0": -rng.uniform(3, 8, count), "z1": rng.uniform(6, 30, count),
            "category": (1 + rng.integers(len(SENSITIVE), size=count)).astype(np.int8)}


def _draw_buildings(
    rng: np.random.Generator, n: int, character: int, facility_lot: int
) -> dict[str, np.ndarray]:
    """Buildings on free lots sharing exactly n rooms (~200 each). Footprints are rectangles
    or L-shapes (a rectangle less its north-east corner); gx/gy are offsets in the lot."""
    nb = int(np.clip(round(n / 200 * rng.uniform(0.8, 1.2)), 1, min(MAX_BUILDINGS, max(1, n // 2))))
    lot = np.sort(rng.choice(np.setdiff1d(np.arange(LOTS), [facility_lot]), nb, replace=False))
    rooms = np.array([n]) if nb == 1 else 2 + rng.multinomial(n - 2 * nb, rng.dirichlet(np.full(nb, 4.0)))
    w, h = rng.uniform(15, 60, (2, nb))
    lshape = (rng.random(nb) < 0.3) & (rooms >= 2)  # an L needs a room in each wing
    nw = np.where(lshape, w * rng.uniform(0.3, 0.6, nb), 0.0)
    nh = np.where(lshape, h * rng.uniform(0.3, 0.6, nb), 0.0)
    area = w * h - nw * nh
    per_floor = np.clip(np.round(area / rng.uniform(*UNIT_SIZE[character], nb)), 2, 60)
    most = np.minimum(MAX_FLOORS, np.maximum(1, rooms // 2))  # at least two rooms a floor
    floors = np.clip(np.round(rooms / per_floor), 1, most).astype(int)
    basements = np.minimum(rng.integers(1, 4, nb), (floors - 1) // 2)  # keep a floor above ground
    inner = LOT - 2 * (STREET_HALF + SETBACK)
    return {
        "lot": lot, "rooms": rooms, "floors": floors, "w": w, "h": h, "nw": nw, "nh": nh, "lshape": lshape,
        "area": area, "storey": rng.uniform(3.0, 3.6, nb),
        "basements": np.where(rng.random(nb) < 0.35, basements, 0),
        "year": rng.integers(OLDEST_BUILD[character], 2024, nb),
        "gx": STREET_HALF + SETBACK + rng.random(nb) * (inner - w),
        "gy": STREET_HALF + SETBACK + rng.random(nb) * (inner - h),
    }


def _expand_floors(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Floors bottom-up (basements first, no floor 0), the building's rooms spread evenly."""
    floors, rooms = b["floors"], b["rooms"]
    fb = np.repeat(np.arange(len(floors)), floors)
    b["first_floor"] = np.cumsum(floors) - floors
    b["last_floor"] = b["first_floor"] + floors - 1
    slot = np.arange(len(fb)) - b["first_floor"][fb]
    level = slot - b["basements"][fb]
    level = np.where(level >= 0, level + 1, level)
    z0 = (level - (level > 0)) * b["storey"][fb]
    return {"b": fb, "slot": slot, "level": level, "z0": z0, "z1": z0 + b["storey"][fb],
            "rooms": rooms[fb] // floors[fb] + (slot < rooms[fb] % floors[fb])}


def _expand_rooms(b: dict[str, np.ndarray], f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rooms tiling each floor: a floor is one wing (rectangle) or two (an L's south bar and
    west arm); a wing of k rooms is split into rows of `cols` rooms, the last row holding the
    rest, wider. Edges are interpolated so neighbours share bit-identical coordinates with
    each other and with the floor outline (x = w*t, y = y0*(1-t) + y1*t is exact at t=0, 1)."""
    lsh = b["lshape"][f["b"]]
    per_floor = 1 + lsh
    wf = np.repeat(np.arange(len(lsh)), per_floor)
    arm = np.zeros(len(wf), bool)
    arm[(np.cumsum(per_floor) - 1)[lsh]] = True  # an L floor's second wing is its west arm
    wb = f["b"][wf]
    w, h, nw, nh = (b[k][wb] for k in ("w", "h", "nw", "nh"))
    x1 = np.where(arm, w - nw, w)
    y0 = np.where(arm, h - nh, 0.0)
    y1 = np.where(lsh[wf] & ~arm, h - nh, h)
    k = f["rooms"][wf]
    k_bar = np.clip(np.round(k * w * (h - nh) / b["area"][wb]), 1, np.maximum(1, k - 1))
    wk = np.where(lsh[wf], np.where(arm, k - k_bar, k_bar), k).astype(int)
    cols = np.clip(np.round(np.sqrt(wk * x1 / (y1 - y0))), 1, wk).astype(int)
    nrows = -(-wk // cols)

    rw = np.repeat(np.arange(len(wk)), wk)
    t = np.arange(len(rw)) - np.repeat(np.cumsum(wk) - wk, wk)
    c = cols[rw]
    row = t // c
    col = t - row * c
    in_row = np.minimum(c, wk[rw] - row * c)
    tx0, tx1 = col / in_row, (col + 1) / in_row
    ty0, ty1 = row / nrows[rw], (row + 1) / nrows[rw]
    rx0, rx1 = x1[rw] * tx0, x1[rw] * tx1
    ry0 = y0[rw] * (1 - ty0) + y1[rw] * ty0
    ry1 = y0[rw] * (1 - ty1) + y1[rw] * ty1
    floor = wf[rw]
    first_room = np.cumsum(f["rooms"]) - f["rooms"]
    return {"b": f["b"][floor], "floor": floor, "x0": rx0, "x1": rx1, "y0": ry0, "y1": ry1,
            "area": (rx1 - rx0) * (ry1 - ry0), "number": np.arange(len(rw)) - first_room[floor] + 1}


def _room_use(level: np.ndarray, area: np.ndarray, character: int) -> np.ndarray:
    """The noiseless label: storage below ground, shops and restaurants at street level
    (by size and neighbourhood), offices up high in business neighbourhoods, homes otherwise."""
    ground, low, high = level == 1, (level >= 2) & (level <= 3), level >= 4
    rules = {
        COMMERCIAL: [(ground & (area < 90), RST), (ground, RET), (low & (area >= 60), RET), (low, CLI),
                     (high & (area >= 100), OFF)],
        BUSINESS: [(ground & (area >= 80), RET), (ground, RST), (low, OFF), (high & (area >= 50), OFF)],
        MIXED: [(ground & (area < 60), RST), (ground & (area < 100), CLI), (ground, RET),
                (low & (area < 80), CLI), (low, OFF), (high & (area >= 120), OFF)],
        RESIDENTIAL: [(ground & (area >= 80), RET)],
    }[character]
    conditions, choices = zip(*[(level < 0, STO), *rules])
    return np.select(conditions, choices, RES)


def _draw_people(rng: np.random.Generator, n: int, district: int, role: str) -> dict[str, np.ndarray]:
    """A person as numbers: name parts, ID-card region/birth day/sequence, phone."""
    n_given = len(GIVEN) - 1
    return {
        f"{role}_surname": rng.choice(len(SURNAMES), n, p=SURNAME_P),
        f"{role}_given1": rng.integers(n_given, size=n),
        f"{role}_given2": np.where(rng.random(n) < SINGLE_GIVEN, n_given, rng.integers(n_given, size=n)),
        f"{role}_region": np.where(rng.random(n) < 0.7, district, rng.integers(len(DISTRICTS), size=n)),
        f"{role}_birth": rng.integers(BIRTH_DAYS, size=n),
        f"{role}_seq": rng.integers(1000, size=n),
        f"{role}_phone": rng.integers(3, 10, n) * 10**9 + rng.integers(10**9, size=n),  # after the leading 1
    }


def _draw_segments(rng: np.random.Generator, n: int, block: int, bx: float, by: float,
                   roads: np.ndarray) -> dict[str, np.ndarray]:
    """About n/50 segments: one lot-long piece of street carrying a road on the centre line
    or a pipe/cable beside it. A block owns its south and west streets and the inner ones."""
    pieces = 2 * LOTS  # east-west pieces, then north-south
    chosen = np.sort(rng.choice(pieces * len(SEGMENT_KINDS), int(np.clip(round(n / 50), 1, pieces * 3)),
                                replace=False))
    piece, kind = np.divmod(chosen, len(SEGMENT_KINDS))
    east = piece < LOTS
    i = np.where(east, piece % LOT_COLS, (piece - LOTS) // LOT_ROWS)
    j = np.where(east, piece // LOT_COLS, (piece - LOTS) % LOT_ROWS)
    off = SEGMENT_OFFSET[kind]
    m = len(chosen)
    top = rng.uniform(1.5, 3.0, m)
    diameter = np.where(kind == 1, rng.choice(PIPE_DN, m), rng.choice(CABLE_DN, m))
    road = kind == 0
    return {
        "key": block * 100 + piece, "kind": kind,
        "ax": bx + np.where(east, i * LOT, i * LOT + off),
        "ay": by + np.where(east, j * LOT + off, j * LOT),
        "bx": bx + np.where(east, (i + 1) * LOT, i * LOT + off),
        "by": by + np.where(east, j * LOT + off, (j + 1) * LOT),
        "z0": np.where(road, 0.0, -top - diameter / 1000), "z1": np.where(road, 0.0, -top),
        "material": np.select([road, kind == 1], [0, 1 + rng.integers(len(PIPE_MATERIALS), size=m)],
                              1 + len(PIPE_MATERIALS) + rng.integers(len(CABLE_MATERIALS), size=m)),
        "diameter": np.where(road, np.nan, diameter), "road": roads[np.where(east, 0, 1)],
    }


# ---------------------------------------------------------------------------------------
# Rendering: a chunk's numbers to a UNIT_SCHEMA table.


class _Frame:
    """Metres east/north of the origin to CGCS2000 degrees, with the ellipsoid's radii of
    curvature at the origin: exact enough over a district, linear (rectangles stay
    rectangles) and far faster than a projection for millions of vertices."""

    def __init__(self, origin: tuple[float, float]):
        self.lon0, self.lat0 = origin
        phi = math.radians(self.lat0)
        w = 1 - _E2 * math.sin(phi) ** 2
        self.per_m_east = 180 / (math.pi * _A / math.sqrt(w) * math.cos(phi))
        self.per_m_north = 180 / (math.pi * _A * (1 - _E2) / w**1.5)

    def lon(self, x: np.ndarray) -> np.ndarray:
        return self.lon0 + x * self.per_m_east

    def lat(self, y: np.ndarray) -> np.ndarray:
        return self.lat0 + y * self.per_m_north

    def box(self, x0, y0, x1, y1) -> np.ndarray:
        return shapely.box(self.lon(x0), self.lat(y0), self.lon(x1), self.lat(y1))


def _render_rooms(d: dict[str, np.ndarray], frame: _Frame) -> pa.Table:
    gx, gy, level = d["gx"], d["gy"], d["level"]
    label = _join(_take(pa.array(["", "B"]), level < 0), _str(np.abs(level) * 100 + d["number"]))
    vacant = pa.array(d["vacant"])
    return _table("room", d, {
        "unit_id": _ids("R", d["id"], 9),
        "geometry": frame.box(gx + d["x0"], gy + d["y0"], gx + d["x1"], gy + d["y1"]),
        "building_id": _ids("B", d["key"], 8), "floor": level, "area_m2": d["area"],
        "room_use": _take(pa.array(USES), d["use"]), "build_year": d["year"],
        "household_size": d["household"], "monthly_rent": d["rent"],
        "owner_name": _names(d, "owner"), "owner_id_number": _id_numbers(d, "owner"),
        "owner_phone": _phones(d, "owner"),
        "occupant_name": pc.if_else(vacant, None, _names(d, "occupant")),
        "occupant_id_number": pc.if_else(vacant, None, _id_numbers(d, "occupant")),
        "address": _join(_address(d), label, "室"),
        "notes": _notes(d), "sensitive_category": _take(SENSITIVE_NAMES, d["sensitive"]),
    })


def _render_floors(d: dict[str, np.ndarray], frame: _Frame) -> pa.Table:
    return _table("floor", d, {
        "unit_id": _ids("F", d["key"] * 100 + d["slot"], 10), "geometry": _footprints(d, frame),
        "building_id": _ids("B", d["key"], 8), "floor": d["level"], "area_m2": d["area"],
        "build_year": d["year"], "address": _address(d),
    })


def _render_buildings(d: dict[str, np.ndarray], frame: _Frame) -> pa.Table:
    ids = _ids("B", d["key"], 8)
    return _table("building", d, {
        "unit_id": ids, "geometry": _footprints(d, frame), "building_id": ids, "area_m2": d["area"],
        "build_year": d["year"], "address": _address(d),
    })


def _render_parcels(d: dict[str, np.ndarray], frame: _Frame) -> pa.Table:
    return _table("parcel", d, {
        "unit_id": _ids("P", d["key"], 8), "geometry": _lot_box(d, frame),
        "building_id": _ids("B", d["key"], 8), "area_m2": np.full(len(d["key"]), LOT_AREA),
        "address": _join(_street(d), _str(d["door"]), "号"),
    })


def _render_facilities(d: dict[str, np.ndarray], frame: _Frame) -> pa.Table:
    return _table("facility", d, {
        "unit_id": _ids("S", d["key"], 8), "geometry": _lot_box(d, frame),
        "area_m2": np.full(len(d["key"]), LOT_AREA),
        "address": _join(_street(d), _str(d["door"]), "号"),
        "notes": _take(FACILITY_NOTES, d["category"] - 1),
        "sensitive_category": _take(SENSITIVE_NAMES, d["category"]),
    })


def _render_segments(d: dict[str, np.ndarray], frame: _Frame) -> pa.Table:
    ends = [frame.lon(d["ax"]), frame.lat(d["ay"]), frame.lon(d["bx"]), frame.lat(d["by"])]
    road = np.isnan(d["diameter"])
    return _table(_take(pa.array(SEGMENT_KINDS), d["kind"]), d, {
        "unit_id": _join(_take(pa.array(SEGMENT_PREFIX), d["kind"]), _lpad(d["key"], 8)),
        "geometry": shapely.linestrings(np.stack(ends, axis=1).reshape(-1, 2, 2)),
        "material": _take(MATERIALS, d["material"]),
        "diameter_mm": pa.array(np.nan_to_num(d["diameter"]), mask=road),
        "address": _street(d),
    })


def _table(kind: str | pa.Array, d: dict[str, np.ndarray], columns: dict) -> pa.Table:
    """Fill in what every kind shares (kind, z range, place, sensitive "" by default) and
    nulls for the rest, in UNIT_SCHEMA order and types."""
    n = len(columns["unit_id"])
    columns = {
        "kind": _const(kind, n) if isinstance(kind, str) else kind, "z_min": d["z0"], "z_max": d["z1"],
        "district": _take(DISTRICT_NAMES, d["district"]), "neighbourhood": _take(HOOD_NAMES, d["hood"]),
        "sensitive_category": _const("", n),
        **columns,
    }
    columns["geometry"] = pa.array(shapely.to_wkb(columns["geometry"]), pa.binary())
    arrays = []
    for field in UNIT_SCHEMA:
        value = columns.get(field.name)
        if value is None:
            value = pa.nulls(n, field.type)
        elif isinstance(value, np.ndarray):
            value = pa.array(value, field.type)
        arrays.append(value)
    return pa.Table.from_arrays(arrays, schema=UNIT_SCHEMA)


def _footprints(d: dict[str, np.ndarray], frame: _Frame) -> np.ndarray:
    """Building outlines (also each floor's), built from the same sums as the rooms' edges."""
    gx, gy, w, h, nw, nh = (d[k] for k in ("gx", "gy", "w", "h", "nw", "nh"))
    geoms = frame.box(gx, gy, gx + w, gy + h)
    lsh = d["lshape"]
    xs = np.stack([gx, gx + w, gx + w, gx + (w - nw), gx + (w - nw), gx, gx], axis=1)[lsh]
    ys = np.stack([gy, gy, gy + (h - nh), gy + (h - nh), gy + h, gy + h, gy], axis=1)[lsh]
    geoms[lsh] = shapely.polygons(np.stack([frame.lon(xs), frame.lat(ys)], axis=2))
    return geoms


def _lot_box(d: dict[str, np.ndarray], frame: _Frame) -> np.ndarray:
    """A lot less half a street on each side: a parcel, or a facility's compound."""
    lo, hi = STREET_HALF, LOT - STREET_HALF
    return frame.box(d["gx"] + lo, d["gy"] + lo, d["gx"] + hi, d["gy"] + hi)


def _street(d: dict[str, np.ndarray]) -> pa.Array:
    return _join(_const("上海市", len(d["road"])), _take(DISTRICT_NAMES, d["district"]),
                 _take(ROAD_NAMES, d["road"]))


def _address(d: dict[str, np.ndarray]) -> pa.Array:
    """上海市<district><road><door>号<n>号楼: a building's postal address."""
    return _join(_street(d), _str(d["door"]), "号", _str(d["key"] % 100 + 1), "号楼")


def _names(d: dict[str, np.ndarray], role: str) -> pa.Array:
    return _join(_take(SURNAMES, d[f"{role}_surname"]), _take(GIVEN, d[f"{role}_given1"]),
                 _take(GIVEN, d[f"{role}_given2"]))


def _id_numbers(d: dict[str, np.ndarray], role: str) -> pa.Array:
    """18-character resident ID numbers: region, birth date, sequence, check digit."""
    born = BIRTH_FIRST + d[f"{role}_birth"]
    month = born.astype("datetime64[M]")
    yyyymmdd = ((month.astype("datetime64[Y]").astype(int) + 1970) * 10_000
                + (month.astype(int) % 12 + 1) * 100 + (born - month).astype(int) + 1)
    first17 = np.concatenate([_digits(REGION_CODES[d[f"{role}_region"]], 6), _digits(yyyymmdd, 8),
                              _digits(d[f"{role}_seq"], 3)], axis=1)
    check = id_check_digits(first17).astype("S1").view(np.uint8)[:, None]
    return _ascii(np.concatenate([first17 + ord("0"), check], axis=1))


def _phones(d: dict[str, np.ndarray], role: str) -> pa.Array:
    phone = d[f"{role}_phone"]
    return _ascii(np.concatenate([np.ones((len(phone), 1), np.uint8), _digits(phone, 10)], axis=1) + ord("0"))


def _notes(d: dict[str, np.ndarray]) -> pa.Array:
    """Harmless remarks, or ~20% that carry a contact's name, phone, ID number or plate."""
    code, harmless = d["note"], len(HARMLESS_NOTES)
    rows = [np.flatnonzero(code < harmless)]
    rows += [np.flatnonzero(code == harmless + t) for t in range(PII_NOTES)]
    c = [{k: v[r] for k, v in d.items() if k.startswith("contact_")} for r in rows[1:]]
    pieces = [
        _take(HARMLESS_NOTES, code[rows[0]]),
        _join(_const("联系人", len(rows[1])), _names(c[0], "contact"), " ", _phones(c[0], "contact")),
        _join(_const("业主身份证号", len(rows[2])), _id_numbers(c[1], "contact"), "，已核验"),
        _join(_const("车位登记车牌沪", len(rows[3])), _take(PLATE_LETTERS, c[2]["contact_letter"]),
              _ascii(_digits(c[2]["contact_plate"], 5) + ord("0"))),
        _join(_const("紧急联系电话", len(rows[4])), _phones(c[3], "contact"),
              "（", _names(c[3], "contact"), "）"),
    ]
    order = np.concatenate(rows)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pc.take(pa.concat_arrays(pieces), inverse)


def _const(text: str, n: int) -> pa.Array:
    """A column of one string, so a join of pieces has at least one array to size it."""
    return _take(pa.array([text]), np.zeros(n, int))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) decimal digits of non-negative integers, most significant first."""
    return (values[:, None] // 10 ** np.arange(width - 1, -1, -1) % 10).astype(np.uint8)


def _ascii(chars: np.ndarray) -> pa.Array:
    """A string column from an (n, width) matrix of ASCII codes, without a Python loop."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars, dtype=np.uint8)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _take(values: pa.Array, indices: np.ndarray) -> pa.Array:
    return pc.take(values, pa.array(np.asarray(indices, dtype=np.int64)))


def _str(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())


def _lpad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_str(values), width, padding="0")


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return _join(_const(prefix, len(numbers)), _lpad(numbers, width))


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")
