"""Topology of a release: units that touch in the corpus still touch in the written file.

Rooms tile their floor, parcels and buildings sit edge to edge, segments meet end to end or
end to side. Shifting, rounding to the release grid and simplifying each unit on its own
breaks those contacts wherever a vertex of one unit lies on an edge of another (a
T-junction: the short side of one room against the long wall of the next row): the vertex
and the wall's two ends are rounded independently, and the vertex ends up beside the wall.
So the pipeline

1. groups units into **coverages** (:func:`coverage_groups`): the rooms of one floor of one
   building, the buildings, the parcels and facilities, and the segment network;
2. **nodes** each coverage before the shift (:func:`node`): a vertex of one unit that lies
   on an edge of another in the same coverage is inserted into that edge, so every shared
   boundary is the same sequence of vertices on both sides. Every step after is a function
   of the coordinates alone, so equal vertices stay equal: the shift moves them alike, the
   quantizer rounds them alike;
3. simplifies a coverage without removing a vertex that several of its units share
   (:func:`simplify_members`): polygon coverages that hold something to simplify go through
   GEOS's coverage simplifier, segments are simplified between their shared vertices;
4. **measures** the result on the written file (:func:`measure_contacts`): of the pairs
   that touched in the corpus, how many still touch.

Contacts between coverages (a room and its floor's outline, rooms of neighbouring
buildings) and between units in different batches of the stream are not kept on purpose;
the measurement counts what breaks among the pairs it samples.

Plain Python (numpy, shapely, pyarrow); no Django.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from .writers import quadrilaterals

COVERAGE = "_coverage"  # the column carrying each unit's coverage through the pipeline; -1 for none
NODE_TOLERANCE_DEG = 1e-8  # about a millimetre: a vertex this close to an edge lies on it

# Coverages by kind: rooms per (building, floor); the rest of a batch per layer.
LAYERS = {"building": 0, "parcel": 1, "facility": 1, "road": 2, "pipe": 2, "cable": 2}
_LAYER_COUNT = 3
_POLYGON, _MULTIPOLYGON, _LINESTRING, _MULTILINESTRING = 3, 6, 1, 5


def coverage_groups(table: pa.Table) -> np.ndarray:
    """A coverage number per row (-1: the unit belongs to none): rooms by building and
    floor, read from the corpus's own columns before desensitization generalizes them."""
    kinds = table.column("kind").to_numpy(zero_copy_only=False)
    groups = np.full(table.num_rows, -1, dtype=np.int64)
    for kind, layer in LAYERS.items():
        groups[kinds == kind] = layer
    rooms = kinds == "room"
    if rooms.any() and {"building_id", "floor"} <= set(table.column_names):
        rooms &= table.column("building_id").is_valid().to_numpy(zero_copy_only=False)
        keys = pa.table({
            "b": table.column("building_id").filter(pa.array(rooms)),
            "f": table.column("floor").filter(pa.array(rooms)),
        })
        groups[rooms] = _LAYER_COUNT + _dense_ids(keys)
    return groups


def _dense_ids(keys: pa.Table) -> np.ndarray:
    """0, 1, ... per distinct row of keys (nulls equal to each other)."""
    numbered = keys.append_column("_i", pa.array(np.arange(keys.num_rows)))
    grouped = numbered.group_by(list(keys.column_names), use_threads=False).aggregate([("_i", "list")])
    lists = grouped.column("_i_list").combine_chunks()
    ids = np.empty(keys.num_rows, dtype=np.int64)
    ids[lists.values.to_numpy()] = np.repeat(np.arange(len(lists)), np.diff(lists.offsets.to_numpy()))
    return ids


# --- rings: the vertices of polygons' rings and of lines, with their structure ---------------


class _Rings:
    """Every ring (polygon boundary) and line of some WKB geometries as flat vertex arrays.

    xy: (n, 2) vertices, grouped by ring in ring order; ring: the ring of each vertex;
    closed: whether a ring is a polygon's (its last vertex repeats its first). Rings belong to
    parts and parts to geometries, so changed geometries can be rebuilt. Quadrilaterals, the
    common room, are read from their WKB without GEOS."""

    def __init__(self, wkb: pa.Array | None = None, *, geometries: np.ndarray | None = None):
        if geometries is None:
            is_quad, corners = quadrilaterals(wkb)
            quads, other_rows = np.flatnonzero(is_quad), np.flatnonzero(~is_quad)
            others = shapely.from_wkb(wkb.take(pa.array(other_rows)).to_numpy(zero_copy_only=False))
            count = len(wkb)
        else:
            quads, other_rows, corners = np.array([], np.int64), np.arange(len(geometries)), np.empty((0, 5, 2))
            others, count = geometries, len(geometries)
        self.types = np.full(count, _POLYGON)
        self.types[other_rows] = shapely.get_type_id(others)
        parts, part_of = shapely.get_parts(others, return_index=True)
        polygonal = shapely.get_type_id(parts) == _POLYGON
        q = len(quads)
        self.part_geometry = np.concatenate([quads, other_rows[part_of]])
        self.part_polygonal = np.concatenate([np.ones(q, bool), polygonal])
        polygon_parts, line_parts = np.flatnonzero(polygonal), np.flatnonzero(~polygonal)
        rings, ring_of = shapely.get_rings(parts[polygon_parts], return_index=True)
        self.ring_part = np.concatenate([np.arange(q), q + polygon_parts[ring_of], q + line_parts])
        self.closed = np.concatenate([np.ones(q + len(rings), bool), np.zeros(len(line_parts), bool)])
        xy, ring = shapely.get_coordinates(np.concatenate([rings, parts[line_parts]]), return_index=True)
        self.xy = np.concatenate([corners.reshape(-1, 2), xy])
        self.ring = np.concatenate([np.repeat(np.arange(q), 5), q + ring])
        # Rings listed by part, a part's shell before its holes.
        order = np.argsort(self.ring_part, kind="stable")
        if (order != np.arange(len(order))).any():
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            self.ring_part, self.closed = self.ring_part[order], self.closed[order]
            self.ring = rank[self.ring]
            by_ring = np.argsort(self.ring, kind="stable")
            self.xy, self.ring = self.xy[by_ring], self.ring[by_ring]

    def vertices_per_geometry(self, count: int) -> np.ndarray:
        return np.bincount(self.part_geometry[self.ring_part[self.ring]], minlength=count)

    def rebuild(self, xy: np.ndarray, ring: np.ndarray, changed_rings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The geometries owning a changed ring, rebuilt from the rings' new vertices
        (xy, ring: every ring, in order), and their row numbers."""
        ring_geometry = self.part_geometry[self.ring_part]
        rebuilt = np.unique(ring_geometry[changed_rings])
        if not len(rebuilt):
            return np.array([], dtype=object), rebuilt
        rings = np.flatnonzero(np.isin(ring_geometry, rebuilt))
        keep = np.isin(ring, rings)
        xy, of_ring = xy[keep], np.searchsorted(rings, ring[keep])
        closed = self.closed[rings]
        made = np.empty(len(rings), dtype=object)
        for flag, make in ((True, shapely.linearrings), (False, shapely.linestrings)):
            chosen = closed == flag
            if chosen.any():
                vertices = chosen[of_ring]
                made[chosen] = make(xy[vertices], indices=np.searchsorted(np.flatnonzero(chosen), of_ring[vertices]))
        part_ids, of_part = np.unique(self.ring_part[rings], return_inverse=True)
        parts = np.empty(len(part_ids), dtype=object)
        polygonal = self.part_polygonal[part_ids]
        if polygonal.any():
            chosen = polygonal[of_part]
            parts[polygonal] = shapely.polygons(
                made[chosen], indices=np.searchsorted(np.flatnonzero(polygonal), of_part[chosen])
            )
        parts[~polygonal] = made[~polygonal[of_part]]  # a line part is its one ring
        of_geometry = np.searchsorted(rebuilt, self.part_geometry[part_ids])
        types = self.types[rebuilt]
        out = np.empty(len(rebuilt), dtype=object)
        single = np.isin(types, (_POLYGON, _LINESTRING))
        out[single] = parts[single[of_geometry]]
        for type_id, make in ((_MULTIPOLYGON, shapely.multipolygons), (_MULTILINESTRING, shapely.multilinestrings)):
            chosen = types == type_id
            if chosen.any():
                taken = chosen[of_geometry]
                out[chosen] = make(parts[taken], indices=np.searchsorted(np.flatnonzero(chosen), of_geometry[taken]))
        return out, rebuilt


def node(wkb: pa.Array | pa.ChunkedArray, groups: np.ndarray, *,
         tolerance: float = NODE_TOLERANCE_DEG) -> tuple[pa.Array, int]:
    """Insert into every edge the vertices of other units of its coverage that lie on it
    (within tolerance, strictly between its ends), so that shared boundaries carry the same
    vertices on both sides. Returns the new WKB and how many vertices were inserted.

    Floors stacked with the same plan are one coverage repeated, so each distinct coverage
    (the same footprints) is noded once and its result given to its copies. Candidate
    (edge, vertex) pairs come from one sort of the vertices along whichever axis the edge
    spans least, so a wall meets only the vertices level with it."""
    wkb = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    members, footprint, distinct = _footprints(wkb, groups)
    if len(members) == 0:
        return wkb, 0
    group_of = groups[members]
    representative = _representatives(footprint, group_of)
    noding = np.flatnonzero(representative == group_of)
    rings = _Rings(distinct.take(pa.array(footprint[noding])))
    xy, ring = rings.xy, rings.ring
    group = group_of[noding][rings.part_geometry[rings.ring_part[ring]]]
    is_last = np.r_[ring[1:] != ring[:-1], True]
    # Edges run from each vertex to the next one of its ring; vertices are tested once (the
    # closing vertex of a ring repeats its first).
    edge = np.flatnonzero(~is_last)
    vertex = np.flatnonzero(~(is_last & rings.closed[ring]))
    hits_edge, hits_vertex, t = _vertices_on_edges(
        xy[edge], xy[edge + 1], group[edge], ring[edge], xy[vertex], group[vertex], ring[vertex], tolerance
    )
    if len(hits_edge) == 0:
        return wkb, 0
    hits_vertex = vertex[hits_vertex]
    # The new vertex sequence: each original vertex (at its own position) and each insertion
    # (after its edge's start, ordered along the edge); a point inserted into one edge twice
    # (two units share it) is kept once.
    position = np.r_[np.arange(len(xy)), edge[hits_edge]]
    along = np.r_[np.zeros(len(xy)), t]
    points = np.r_[xy, xy[hits_vertex]]
    order = np.lexsort((along, position))
    position, points = position[order], points[order]
    repeated = np.r_[False, (position[1:] == position[:-1]) & np.all(points[1:] == points[:-1], axis=1)]
    position, points = position[~repeated], points[~repeated]
    noded, changed = rings.rebuild(points, ring[position], np.unique(ring[edge[hits_edge]]))
    before = rings.vertices_per_geometry(len(noding))[changed]
    # Every copy of a noded coverage takes the noded footprint: rows are found by their
    # (representative coverage, footprint).
    known = len(distinct)
    changed_key = group_of[noding[changed]] * known + footprint[noding[changed]]
    order = np.argsort(changed_key)
    changed_key = changed_key[order]
    values = shapely.to_wkb(noded[order])
    added = (shapely.get_num_coordinates(noded) - before)[order]
    key = representative * known + footprint
    at = np.minimum(np.searchsorted(changed_key, key), len(changed_key) - 1)
    hit = changed_key[at] == key
    out = pc.replace_with_mask(wkb, _mask(len(wkb), members[hit]), pa.array(values[at[hit]], wkb.type))
    return out, int(added[at[hit]].sum())


def _footprints(wkb: pa.Array, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The rows in a coverage, each one's distinct footprint number, and the distinct
    footprints (WKB). Points and collections have no edges to share and are left out."""
    encoded = pc.dictionary_encode(wkb)
    distinct = encoded.dictionary
    footprint = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    edged = np.isin(_wkb_types(distinct), (2, 3, 5, 6))  # WKB's LineString, Polygon and their multis
    members = np.flatnonzero((groups >= 0) & edged[footprint])
    return members, footprint[members], distinct


def _wkb_types(wkb: pa.Array) -> np.ndarray:
    """The geometry type number (1 Point ... 7 GeometryCollection) of each WKB value, read
    from its header (either byte order; ISO and EWKB Z/M flags stripped)."""
    header = pc.binary_slice(wkb, 0, 5).cast(pa.binary(5))
    raw = np.frombuffer(header.buffers()[1], np.uint8, count=5 * len(header), offset=5 * header.offset)
    raw = raw.reshape(-1, 5)
    little = raw[:, 1:].copy().view("<u4").ravel()
    big = raw[:, 1:].copy().view(">u4").ravel()
    kind = np.where(raw[:, 0] == 1, little, big).astype(np.int64)
    return (kind & 0x0FFFFFFF) % 1000


def _representatives(footprint: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each row, the first coverage made of exactly the same footprints as its own."""
    order = np.lexsort((footprint, group))
    g, f = group[order], footprint[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ids = g[starts]
    offsets = (np.r_[starts, len(g)] * 4).astype(np.int32)
    signatures = pa.BinaryArray.from_buffers(
        pa.binary(), len(ids), [None, pa.py_buffer(offsets), pa.py_buffer(f.astype(np.int32).tobytes())]
    )
    layout = pc.dictionary_encode(signatures).indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(layout, return_index=True)
    return ids[first][layout][np.searchsorted(ids, group)]


def shared_coordinates(wkb: pa.Array | pa.ChunkedArray, groups: np.ndarray) -> np.ndarray:
    """The vertices (lon + 1j * lat) that two or more rings of one coverage share: corners
    where rooms meet, ends where segments meet. Simplification keeps them."""
    wkb = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    members, footprint, distinct = _footprints(wkb, groups)
    if len(members) == 0:
        return np.array([], dtype=np.complex128)
    group_of = groups[members]
    rows = np.flatnonzero(_representatives(footprint, group_of) == group_of)
    rings = _Rings(distinct.take(pa.array(footprint[rows])))
    is_last = np.r_[rings.ring[1:] != rings.ring[:-1], True]
    vertex = np.flatnonzero(~(is_last & rings.closed[rings.ring]))
    ring = rings.ring[vertex]
    x, y = rings.xy[vertex, 0], rings.xy[vertex, 1]
    group = group_of[rows][rings.part_geometry[rings.ring_part[ring]]]
    order = np.lexsort((ring, y, x, group))
    ring, x, y, group = ring[order], x[order], y[order], group[order]
    same_point = np.r_[False, (group[1:] == group[:-1]) & (x[1:] == x[:-1]) & (y[1:] == y[:-1])]
    again_in_another_ring = same_point & np.r_[False, ring[1:] != ring[:-1]]
    return np.unique(x[again_in_another_ring] + 1j * y[again_in_another_ring])


def simplify_between(geometries: np.ndarray, pinned: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas–Peucker on the stretches of each ring or line between its pinned vertices
    (``pinned``: one flag per vertex, in shapely.get_coordinates order), which all stay: an
    edge two units share is pinned at every vertex, so both keep it vertex for vertex. A
    line's ends are always kept; a ring with nothing pinned is simplified as one stretch
    from its first vertex. A geometry that would come out invalid is returned as it was."""
    rings = _Rings(geometries=geometries)
    ring = rings.ring
    n_rings = len(rings.closed)
    start = np.searchsorted(ring, np.arange(n_rings))
    size = np.diff(np.r_[start, len(ring)])
    closed = rings.closed
    cycle = np.where(closed, size - 1, size)  # a closed ring's last vertex repeats its first
    local = np.arange(len(ring)) - start[ring]
    pins = pinned.copy()
    pins[start[~closed]] = True  # a line's ends
    pins[(start + size - 1)[~closed]] = True
    pins &= local < cycle[ring]
    first_pin = np.full(n_rings, len(ring))
    pinned_rows = np.flatnonzero(pins)
    np.minimum.at(first_pin, ring[pinned_rows], local[pinned_rows])
    first_pin[first_pin == len(ring)] = 0  # nothing pinned: one stretch from the first vertex
    # Each ring's vertices from its first pin around the cycle, and that pin again to close.
    length = cycle + closed
    seq_ring = np.repeat(np.arange(n_rings), length)
    step = np.arange(len(seq_ring)) - np.repeat(np.cumsum(length) - length, length)
    seq_local = np.where(closed[seq_ring], (first_pin[seq_ring] + step) % np.maximum(cycle[seq_ring], 1), step)
    seq_vertex = start[seq_ring] + seq_local
    seq_pin = pins[seq_vertex]
    seq_pin[np.cumsum(length) - length] = True  # a ring's walk starts at a pin
    seq_pin[np.cumsum(length) - 1] = True  # and ends at one
    # Stretch numbers: a pin ends the stretch before it and starts the next; a walk's last
    # vertex only ends one.
    is_end = np.zeros(len(seq_ring), bool)
    is_end[np.cumsum(length) - 1] = True
    stretch = np.cumsum(seq_pin & ~is_end) - 1
    again = seq_pin & ~is_end & (step > 0)  # interior pins also close the previous stretch
    entries = np.r_[np.arange(len(seq_ring)), np.flatnonzero(again)]
    entry_stretch = np.r_[stretch, stretch[again] - 1]
    order = np.lexsort((entries, entry_stretch))
    entries, entry_stretch = entries[order], entry_stretch[order]
    lines = shapely.linestrings(rings.xy[seq_vertex[entries]], indices=entry_stretch)
    simplified = shapely.simplify(lines, tolerance, preserve_topology=True)
    xy, of_stretch = shapely.get_coordinates(simplified, return_index=True)
    stretch_ring = np.empty(entry_stretch.max() + 1, np.int64)
    stretch_ring[entry_stretch] = seq_ring[entries]
    first_of_stretch = np.r_[True, of_stretch[1:] != of_stretch[:-1]]
    first_stretch_of_ring = np.r_[True, stretch_ring[1:] != stretch_ring[:-1]]
    keep = ~first_of_stretch | first_stretch_of_ring[of_stretch]
    xy, of_ring = xy[keep], stretch_ring[of_stretch[keep]]
    # A ring simplified below a ring's minimum (4 vertices closed, 2 open) keeps its vertices.
    left = np.bincount(of_ring, minlength=n_rings)
    short = left < np.where(closed, 4, 2)
    if short.any():
        original = short[ring]
        xy, of_ring = np.r_[xy[~short[of_ring]], rings.xy[original]], np.r_[of_ring[~short[of_ring]], ring[original]]
        by_ring = np.argsort(of_ring, kind="stable")
        xy, of_ring = xy[by_ring], of_ring[by_ring]
    rebuilt, rows = rings.rebuild(xy, of_ring, np.arange(n_rings))
    out = geometries.copy()
    good = shapely.is_valid(rebuilt) & ~shapely.is_empty(rebuilt)
    out[rows[good]] = rebuilt[good]
    return out


def _vertices_on_edges(a, b, edge_group, edge_ring, v, vertex_group, vertex_ring, tolerance):
    """(edge, vertex, t) for every vertex lying on an edge of the same group (of another
    ring), strictly between its ends: 0 < t < 1 along the edge, within tolerance of its line.
    A corner shared by several units is one candidate (the first of them)."""
    order = np.lexsort((v[:, 1], v[:, 0], vertex_group))
    same = np.r_[False, (vertex_group[order][1:] == vertex_group[order][:-1])
                 & np.all(v[order][1:] == v[order][:-1], axis=1)]
    unique = order[~same]
    v, vertex_group, vertex_ring = v[unique], vertex_group[unique], vertex_ring[unique]
    ax, ay, bx, by, vx, vy = a[:, 0], a[:, 1], b[:, 0], b[:, 1], v[:, 0], v[:, 1]
    low_x, high_x = np.minimum(ax, bx) - tolerance, np.maximum(ax, bx) + tolerance
    low_y, high_y = np.minimum(ay, by) - tolerance, np.maximum(ay, by) + tolerance
    # One sort per axis, by group then coordinate (a float key: the group times the span).
    ranges = []
    for vc, low, high, ends in ((vx, low_x, high_x, (ax, bx)), (vy, low_y, high_y, (ay, by))):
        base = min(vc.min(), ends[0].min(), ends[1].min()) - 1.0
        span = max(vc.max(), ends[0].max(), ends[1].max()) - base + 1.0
        key = vertex_group * span + (vc - base)
        sort = np.argsort(key, kind="stable")
        sorted_key = key[sort]
        first = np.searchsorted(sorted_key, edge_group * span + (low - base), "left")
        last = np.searchsorted(sorted_key, edge_group * span + (high - base), "right")
        ranges.append((sort, first, last - first))
    by_y = ranges[1][2] < ranges[0][2]
    count = np.where(by_y, ranges[1][2], ranges[0][2])
    total = int(count.sum())
    if total == 0:
        return np.array([], np.int64), np.array([], np.int64), np.array([])
    pair_edge = np.repeat(np.arange(len(a)), count)
    slot = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    pair_by_y = by_y[pair_edge]
    pair_vertex = np.empty(total, dtype=np.int64)
    for axis, chosen in ((0, ~pair_by_y), (1, pair_by_y)):
        sort, first, _ = ranges[axis]
        pair_vertex[chosen] = sort[first[pair_edge[chosen]] + slot[chosen]]
    px, py = vx[pair_vertex], vy[pair_vertex]
    # The other axis's range, then the line, then strictly inside.
    keep = np.where(pair_by_y, (px >= low_x[pair_edge]) & (px <= high_x[pair_edge]),
                    (py >= low_y[pair_edge]) & (py <= high_y[pair_edge]))
    keep &= vertex_ring[pair_vertex] != edge_ring[pair_edge]
    pair_edge, pair_vertex, px, py = pair_edge[keep], pair_vertex[keep], px[keep], py[keep]
    sx, sy = ax[pair_edge], ay[pair_edge]
    dx, dy = bx[pair_edge] - sx, by[pair_edge] - sy
    wx, wy = px - sx, py - sy
    length2 = dx * dx + dy * dy
    cross = dx * wy - dy * wx
    dot = wx * dx + wy * dy
    margin = tolerance * np.sqrt(length2)
    hit = (cross * cross <= tolerance * tolerance * length2) & (dot > margin) & (dot < length2 - margin)
    return pair_edge[hit], unique[pair_vertex[hit]], dot[hit] / length2[hit]


def _mask(length: int, rows: np.ndarray) -> pa.Array:
    mask = np.zeros(length, dtype=bool)
    mask[rows] = True
    return pa.array(mask)


# --- measuring contacts on the written file -------------------------------------------------

CONTACT_SAMPLE = 20_000  # units of the first batch whose contacts the report follows
_LAYER_NAMES = ("building", "parcel", "segment")  # by layer number


def contact_sample(table: pa.Table, groups: np.ndarray, *, limit: int = CONTACT_SAMPLE) -> dict[str, np.ndarray]:
    """Whole coverages of a (corpus) batch, up to about ``limit`` units: their ids, raw
    geometries and coverage numbers. The segment, parcel and building layers come first,
    then floors in the order the batch holds them."""
    members = np.flatnonzero(groups >= 0)
    layered = members[groups[members] < _LAYER_COUNT][:limit]
    rooms = members[groups[members] >= _LAYER_COUNT]
    room_groups = groups[rooms]
    numbers, first, sizes = np.unique(room_groups, return_index=True, return_counts=True)
    in_order = np.argsort(first)
    fits = np.cumsum(sizes[in_order]) <= limit - len(layered)
    rows = np.sort(np.concatenate([layered, rooms[np.isin(room_groups, numbers[in_order][fits])]]))
    return {
        "ids": table.column("unit_id").take(pa.array(rows)).to_numpy(zero_copy_only=False).astype(str),
        "wkb": table.column("geometry").take(pa.array(rows)).combine_chunks(),
        "groups": groups[rows],
    }


def contact_pairs(sample: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of sampled units of one coverage that touch in the corpus.

    Floors stacked with one plan touch alike: the pairs of one copy are found with an
    STRtree and given to the others, matched by footprint."""
    groups = sample["groups"]
    encoded = pc.dictionary_encode(sample["wkb"])
    footprint = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = shapely.from_wkb(encoded.dictionary.to_numpy(zero_copy_only=False))
    representative = _representatives(footprint, groups)
    reps = np.flatnonzero(representative == groups)
    geometries = distinct[footprint[reps]]
    left, right = shapely.STRtree(geometries).query(geometries, predicate="intersects")
    keep = (left < right) & (groups[reps][left] == groups[reps][right])
    left, right = left[keep], right[keep]
    touching = shapely.touches(geometries[left], geometries[right])  # the costly predicate, on few pairs
    left, right = reps[left[touching]], reps[right[touching]]
    # Rows by (representative coverage, footprint, coverage): a copy's rows line up with its
    # representative's, block by block.
    order = np.lexsort((groups, footprint, representative))
    known = len(distinct) + 1
    block = representative[order] * known + footprint[order]
    first = np.searchsorted(block, groups[left] * known + footprint[left])
    second = np.searchsorted(block, groups[right] * known + footprint[right])
    copies = np.searchsorted(block, groups[left] * known + footprint[left], "right") - first
    pair = np.repeat(np.arange(len(left)), copies)
    step = np.arange(len(pair)) - np.repeat(np.cumsum(copies) - copies, copies)
    return order[first[pair] + step], order[second[pair] + step]


def measure_contacts(sample: dict[str, np.ndarray], pairs: tuple[np.ndarray, np.ndarray],
                     released_ids: np.ndarray, released: pa.Table) -> dict[str, Any]:
    """Of the sampled pairs that touched in the corpus and are both in the release (by
    their released ids, ``released_ids`` aligned with the sample), how many no longer touch
    in ``released`` (unit_id, geometry: read back from the written file). A pair one of
    whose units was withheld, suppressed, aggregated or collapsed is counted apart."""
    left, right = pairs
    ids = released.column("unit_id").to_numpy(zero_copy_only=False).astype(str)
    order = np.argsort(ids)
    ids = ids[order]
    geometries = shapely.from_wkb(released.column("geometry").to_numpy(zero_copy_only=False))[order]
    at = np.minimum(np.searchsorted(ids, released_ids), max(len(ids) - 1, 0))
    found = (ids[at] == released_ids) if len(ids) else np.zeros(len(released_ids), bool)
    both = found[left] & found[right]
    l, r = at[left[both]], at[right[both]]
    # Stacked copies come out identical: each distinct pair of released shapes is tested once.
    shape = pc.dictionary_encode(released.column("geometry").combine_chunks()).indices.to_numpy(zero_copy_only=False)
    shape = shape[order].astype(np.int64)
    pairs, back = np.unique(np.c_[shape[l], shape[r]], axis=0, return_inverse=True)
    first_l, first_r = np.empty(len(pairs), np.int64), np.empty(len(pairs), np.int64)
    first_l[back.ravel()], first_r[back.ravel()] = l, r
    still = shapely.touches(geometries[first_l], geometries[first_r])[back.ravel()]
    layer = sample["groups"][left[both]]
    names = np.where(layer >= _LAYER_COUNT, "room", np.array(_LAYER_NAMES)[np.minimum(layer, _LAYER_COUNT - 1)])
    by_layer = {}
    for name in ("room", "building", "parcel", "segment"):
        chosen = names == name
        if chosen.any():
            by_layer[name] = {"contacts": int(chosen.sum()), "broken": int((~still[chosen]).sum())}
    contacts = int(both.sum())
    broken = int((~still).sum())
    return {
        "measured_on": "the written GeoParquet, after shift and lightweighting",
        "sampled_units": len(released_ids),
        "contacts": contacts,
        "broken": broken,
        "broken_share": round(broken / contacts, 6) if contacts else 0.0,
        "by_layer": by_layer,
        "not_released": int((~both).sum()),
    }
