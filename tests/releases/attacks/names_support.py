"""The names attack: every person name of a raw corpus, looked for in every byte of text a
release hands out (GeoParquet, GeoPackage, GeoJSON, report.json).

Names come from the identifier columns (owners, occupants) and from inside the notes, where
the generator writes its contacts in two templates (联系人<name> <phone>, and
紧急联系电话<phone>（<name>）) that it knows and nothing else does. Text is compared as
decoded strings (a GeoJSON \\u escape or a Parquet page's compression hides nothing).

A name that is also part of a place name published as such (田林 in 田林街道) is no mention
of the person: occurrences inside the corpus's own place names (its district and
neighbourhood values, released as columns anyway) are cut out before the search.
"""
from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_HAN_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
CONTACT_PATTERNS = (r"^联系人(?P<name>\S+) 1[0-9]{10}$", r"（(?P<name>\S+)）$")
PLACE_COLUMNS = ("district", "neighbourhood")


def corpus_names(corpus: pa.Table) -> dict[str, set[str]]:
    """The raw corpus's person names by where they are: columns, or inside the notes."""
    names = {}
    for column in ("owner_name", "occupant_name"):
        names[column] = set(pc.drop_null(pc.unique(corpus.column(column))).to_pylist())
    notes = pc.drop_null(corpus.column("notes")).combine_chunks()
    inside = set()
    for pattern in CONTACT_PATTERNS:
        found = pc.extract_regex(notes.filter(pc.match_substring_regex(notes, pattern)), pattern)
        inside |= set(found.field(0).to_pylist())
    names["notes"] = inside
    return names


def corpus_places(corpus: pa.Table) -> set[str]:
    return {v for c in PLACE_COLUMNS for v in pc.drop_null(pc.unique(corpus.column(c))).to_pylist()}


def output_strings(out_dir: Path) -> dict[str, set[str]]:
    """Every distinct string in each output file, decoded."""
    files: dict[str, set[str]] = {}
    for path in sorted(Path(out_dir).iterdir()):
        strings: set[str] = set()
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for name in table.column_names:
                strings.add(name)
                column = table.column(name)
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    strings |= set(pc.drop_null(pc.unique(column)).to_pylist())
            for key, value in (table.schema.metadata or {}).items():
                strings |= {key.decode("utf-8", "replace"), value.decode("utf-8", "replace")}
        elif path.suffix == ".gpkg":
            with sqlite3.connect(path) as db:
                for (table_name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                    for row in db.execute(f'SELECT * FROM "{table_name}"'):
                        strings |= {v for v in row if isinstance(v, str)}
        elif path.suffix in (".geojson", ".json"):
            _json_strings(json.loads(path.read_text(encoding="utf-8")), strings)
        else:
            strings.add(path.read_bytes().decode("utf-8", "replace"))
        files[path.name] = strings
    return files


def _json_strings(value, into: set[str]) -> None:
    if isinstance(value, str):
        into.add(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            into.add(k)
            _json_strings(v, into)
    elif isinstance(value, list):
        for v in value:
            _json_strings(v, into)


def names_in(strings: Iterable[str], names: set[str], places: Iterable[str] = ()) -> set[str]:
    """The names that occur in any of the strings, outside the given place names."""
    places = sorted(places, key=len, reverse=True)
    sizes = sorted({len(n) for n in names})
    found = set()
    for text in strings:
        for place in places:
            if place in text:
                text = text.replace(place, "|")
        for run in _HAN_RUN.findall(text):
            for size in sizes:
                found |= {run[i:i + size] for i in range(len(run) - size + 1)} & names
    return found


def leaked(corpus: pa.Table, out_dir: Path, files: dict[str, set[str]] | None = None) -> dict[str, dict[str, list[str]]]:
    """For each output file, the raw names found in it, by where the name came from
    (`files`: output_strings(out_dir), if already read)."""
    names = corpus_names(corpus)
    places = corpus_places(corpus)
    every = set().union(*names.values())
    report = {}
    for file, strings in (files or output_strings(out_dir)).items():
        found = names_in(strings, every, places)
        report[file] = {source: sorted(found & group) for source, group in names.items()}
    return report
