"""Automatic checks on a job's held output, run before a steward sees it.

Each check is a dict: name, passed, detail, blocking (a failed blocking check keeps the
output from release; the others inform the steward) and, for code-to-data outputs, finding.
`detail` is fixed text chosen by the check and its result, never a figure or a name the job
controls: the applicant reads it, and it goes into the job's events. `finding` says what was
found (files, counts, sizes) for the data owner's stewards only (`public` drops it).
Where `detail` carries figures it is written as a template with named placeholders and the
check keeps both (`message`, `args`): the platform says it in the reader's language.
"""
from __future__ import annotations

import csv
import io
import math
import re
import zlib
from pathlib import Path

MODEL_MAX_BYTES = 50 * 1024 * 1024
ALLOWED_MODEL_FILES = {"model.pt", "result.json"}


def check(name: str, passed: bool, detail: str, *, blocking: bool = True, finding: str = "",
          args: dict | None = None) -> dict:
    """One check's result; `detail` % `args` when the detail is a template with values."""
    found = {"name": name, "passed": bool(passed), "detail": detail % args if args else detail,
             "blocking": blocking}
    if args:
        found["message"], found["args"] = detail, args
    if finding:
        found["finding"] = finding
    return found


def public(found: list[dict]) -> list[dict]:
    """The checks as an applicant and the event log see them: without the findings."""
    return [{k: v for k, v in c.items() if k != "finding"} for c in found]


def model_checks(output: Path, *, epsilon: float, privacy: dict, metrics: dict) -> list[dict]:
    import torch

    files = {p.name for p in output.iterdir()}
    weights = output / "model.pt"
    found = [
        check("output_files", files <= ALLOWED_MODEL_FILES and "model.pt" in files,
               "files: %(files)s (allowed: %(allowed)s)",
               args={"files": ", ".join(sorted(files)) or "none", "allowed": ", ".join(sorted(ALLOWED_MODEL_FILES))}),
    ]
    size = weights.stat().st_size if weights.exists() else 0
    found.append(check("output_size", 0 < size <= MODEL_MAX_BYTES,
                        "%(size)s bytes (limit %(limit)s)", args={"size": size, "limit": MODEL_MAX_BYTES}))
    try:
        from .challenge import check_weights_archive

        check_weights_archive(weights)  # what torch would allocate, before it does
        state = torch.load(weights, weights_only=True, map_location="cpu")
        finite = all(torch.isfinite(t).all().item() for t in state.values())
        params = sum(t.numel() for t in state.values())
        found.append(check("weights", finite, "%(tensors)s tensors, %(params)s parameters" if finite
                           else "%(tensors)s tensors, %(params)s parameters, some not finite",
                           args={"tensors": len(state), "params": params}))
    except Exception as exc:  # anything torch cannot load as plain tensors is refused
        found.append(check("weights", False, "not a plain state_dict: %(error)s",
                           args={"error": f"{type(exc).__name__}: {exc}"}))
    spent = privacy.get("epsilon")
    accounted = spent is not None and math.isfinite(spent) and spent <= epsilon * 1.001
    found.append(check("privacy", accounted, "accountant ε %(spent)s for target ε %(target)s",
                       args={"spent": f"{spent:.4g}", "target": f"{epsilon:g}"}) if spent is not None
                 else check("privacy", accounted, "no accountant figure: the output is not differentially private"))
    score, baseline = metrics.get("accuracy", metrics.get("rmse")), metrics.get("baseline")
    if score is not None and baseline is not None:
        better = score > baseline if "accuracy" in metrics else score < baseline
        found.append(check("beats_baseline", better, "%(score)s against the trivial model's %(baseline)s",
                           blocking=False, args={"score": f"{score:.4f}", "baseline": f"{baseline:.4f}"}))
    return found


# --- code-to-data outputs ----------------------------------------------------------------

CODE_OUTPUT_TYPES = {".csv", ".json", ".txt", ".md"}
CODE_OUTPUT_FILES_MAX = 20
IDENTIFIER_COLUMNS = ("unit_id", "building_id")
# A private row appears in an output line that holds its exact area and one more of its
# exact attributes (rent or build year).
VERBATIM_COLUMNS = ("area_m2", "monthly_rent", "build_year")
COUNT_HEADER = re.compile(r"(^|[_\s])(count|counts|n|cnt|num|number|freq|frequency|rows|records|total|size)($|[_\s])",
                          re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{5,}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# Encoded or opaque content: what ordinary tables and text do not hold.
BASE64_RUN = re.compile(r"(?=[A-Za-z0-9+/_\-]*\d)(?=[A-Za-z0-9+/_\-]*[g-zG-Z+/_\-])[A-Za-z0-9+/_\-]{40,}={0,2}")
HEX_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
DIGIT_RUN = re.compile(r"\d{24,}")
# zlib's compressed size bounds what a file can hold; ordinary tables and text compress to
# well under COMPRESSED_RATIO_MAX of their size (measured: a CSV of rooms 0.14, of noisy
# aggregates 0.52, Chinese notes 0.15; base64 of compressed rows 0.76, base85 0.81).
COMPRESSED_RATIO_MAX = 0.6
COMPRESSED_RATIO_MIN_BYTES = 1024  # shorter files say too little for the ratio to mean much
INFORMATION_MAX_BYTES = 8 * 1024  # zlib-compressed size of all of an output's files together


def code_output_checks(output: Path, private, *, max_bytes: int, min_cell_count: int) -> list[dict]:
    """Checks of a code-to-data job's held output (`output`: a folder of regular files, as
    sandbox.outputs.collect makes it) against the private rows it ran on (`private`: a
    pyarrow Table with IDENTIFIER_COLUMNS and VERBATIM_COLUMNS)."""
    files = sorted(p for p in output.rglob("*") if p.is_file() and not p.is_symlink())
    total = sum(p.stat().st_size for p in files)
    names = {p: str(p.relative_to(output)) for p in files}
    strange = [names[p] for p in files if p.suffix.lower() not in CODE_OUTPUT_TYPES]
    allowed = ", ".join(sorted(CODE_OUTPUT_TYPES))
    found = [
        check("output_files", 0 < len(files) <= CODE_OUTPUT_FILES_MAX and not strange,
               "the output holds 1 to %(most)s files, each of a type allowed (%(allowed)s)"
               if 0 < len(files) <= CODE_OUTPUT_FILES_MAX and not strange else
               "the output holds no file, more than %(most)s, or files of a type not allowed (allowed: %(allowed)s)",
               finding=f"{len(files)} files" + (f"; not allowed: {_names(strange)}" if strange else ""),
               args={"most": CODE_OUTPUT_FILES_MAX, "allowed": allowed}),
        check("output_size", total <= max_bytes, "the output is within the policy's limit of %(limit)s bytes"
              if total <= max_bytes else "the output is over the policy's limit of %(limit)s bytes",
              finding=f"{total} bytes", args={"limit": max_bytes}),
    ]
    texts = {names[p]: p.read_text(errors="replace") for p in files if p.suffix.lower() in CODE_OUTPUT_TYPES
             and total <= max_bytes}
    identifiers = set()
    for column in IDENTIFIER_COLUMNS:
        if column in private.column_names:
            identifiers.update(v for v in private[column].to_pylist() if v)
    leaked = {name: len(set(_TOKEN.findall(text)) & identifiers) for name, text in texts.items()}
    leaked = {k: v for k, v in leaked.items() if v}
    found.append(check("identifiers", not leaked,
                        "no private identifier appears in the output" if not leaked else
                        "private identifiers (unit or building ids) appear in the output",
                        finding=_per_file(leaked, "ids")))
    rows = _private_rows(private)
    verbatim = {name: n for name, text in texts.items() if (n := _count_verbatim(text, rows))}
    found.append(check("verbatim_rows", not verbatim,
                        "no private row appears in the output" if not verbatim else
                        "private rows appear in the output (a row's exact area with its exact rent or build year)",
                        finding=_per_file(verbatim, "rows")))
    small = {name: n for name, text in texts.items() if name.lower().endswith(".csv")
             and (n := _small_cells(text, min_cell_count))}
    found.append(check("small_cells", not small,
                        "no count below %(least)s" if not small else
                        "counts between 1 and %(below)s appear in the output",
                        finding=_per_file(small, "cells"), args={"least": min_cell_count, "below": min_cell_count - 1}))
    found.extend(encoding_checks(texts, {names[p]: p.read_bytes() for p in files} if total <= max_bytes else {}))
    return found


def encoding_checks(texts: dict[str, str], contents: dict[str, bytes]) -> list[dict]:
    """Flags for content that carries more than it shows: base64, hex or long digit runs
    (`encoded`), files that do not compress like tables or text (`compressibility`), and an
    output whose compressed size is over INFORMATION_MAX_BYTES (`information`)."""
    runs = {}
    for name, text in texts.items():
        counts = {kind: len(pattern.findall(text)) for kind, pattern in (
            ("base64", BASE64_RUN), ("hex", HEX_RUN), ("digit", DIGIT_RUN))}
        if any(counts.values()):
            runs[name] = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    ratios = {}
    packed = 0
    for name, content in contents.items():
        size = len(zlib.compress(content, 9))
        packed += size
        if len(content) >= COMPRESSED_RATIO_MIN_BYTES and size / len(content) > COMPRESSED_RATIO_MAX:
            ratios[name] = size / len(content)
    return [
        check("encoded", not runs, "no base64, hex or long digit runs" if not runs else
              "runs of base64 (40+ characters), hex (32+) or digits (24+): encoded data?",
              finding="; ".join(f"{_names([k])}: {v} runs" for k, v in runs.items())),
        check("compressibility", not ratios,
              "every file compresses like a table or text (zlib ratio at most %(ratio)s)" if not ratios
              else "a file does not compress like a table or text (zlib ratio above %(ratio)s): "
                   "compressed or encrypted data?",
              finding="; ".join(f"{_names([k])}: ratio {v:.2f}" for k, v in ratios.items()),
              args={"ratio": COMPRESSED_RATIO_MAX}),
        check("information", packed <= INFORMATION_MAX_BYTES,
              "the output holds at most %(kib)s KiB of information (its zlib-compressed size)"
              if packed <= INFORMATION_MAX_BYTES else
              "the output holds more than %(kib)s KiB of information (its zlib-compressed size)",
              finding=f"{packed} bytes compressed (at most {packed * 8} bits)",
              args={"kib": INFORMATION_MAX_BYTES // 1024}),
    ]


def _names(names: list[str]) -> str:
    from .outputs import shown_name

    shown = ", ".join(shown_name(n, 60) for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _per_file(counts: dict[str, int], what: str) -> str:
    return "; ".join(f"{_names([k])}: {v} {what}" for k, v in counts.items())


def _private_rows(private) -> dict[float, list[set[float]]]:
    """Each private row's exact area (to 0.01) → the other exact values of the rows with it."""
    if not all(c in private.column_names for c in VERBATIM_COLUMNS[:2]):
        return {}
    columns = [c for c in VERBATIM_COLUMNS if c in private.column_names]
    values = [private[c].to_pylist() for c in columns]
    rows: dict[float, list[set[float]]] = {}
    for area, *others in zip(*values):
        if area is None:
            continue
        rows.setdefault(round(area, 2), []).append({round(float(v), 2) for v in others if v is not None})
    return rows


def _count_verbatim(text: str, rows: dict) -> int:
    if not rows:
        return 0
    hits = 0
    for line in text.splitlines()[:100_000]:
        numbers = {round(float(n), 2) for n in _NUMBER.findall(line)}
        if len(numbers) >= 2 and any(others & (numbers - {area}) for area in numbers & rows.keys()
                                     for others in rows[area]):
            hits += 1
    return hits


def _small_cells(text: str, k: int) -> int:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return 0
    counted = [i for i, name in enumerate(rows[0]) if COUNT_HEADER.search(name.strip())]
    small = 0
    for row in rows[1:]:
        for i in counted:
            try:
                value = float(row[i])
            except (IndexError, ValueError):
                continue
            small += 0 < value < k
    return small
