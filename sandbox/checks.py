"""Automatic checks on a job's held output, run before a steward sees it.

Each check is a dict: name, passed, detail, and blocking (a failed blocking check keeps
the output from release; the others inform the steward).
"""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

MODEL_MAX_BYTES = 50 * 1024 * 1024
ALLOWED_MODEL_FILES = {"model.pt", "result.json"}


def check(name: str, passed: bool, detail: str, *, blocking: bool = True) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail, "blocking": blocking}


def model_checks(output: Path, *, epsilon: float, privacy: dict, metrics: dict) -> list[dict]:
    import torch

    files = {p.name for p in output.iterdir()}
    weights = output / "model.pt"
    found = [
        check("output_files", files <= ALLOWED_MODEL_FILES and "model.pt" in files,
               f"files: {', '.join(sorted(files)) or 'none'} (allowed: {', '.join(sorted(ALLOWED_MODEL_FILES))})"),
    ]
    size = weights.stat().st_size if weights.exists() else 0
    found.append(check("output_size", 0 < size <= MODEL_MAX_BYTES,
                        f"{size} bytes (limit {MODEL_MAX_BYTES})"))
    try:
        from .challenge import check_weights_archive

        check_weights_archive(weights)  # what torch would allocate, before it does
        state = torch.load(weights, weights_only=True, map_location="cpu")
        finite = all(torch.isfinite(t).all().item() for t in state.values())
        params = sum(t.numel() for t in state.values())
        found.append(check("weights", finite, f"{len(state)} tensors, {params} parameters"
                                               f"{'' if finite else ', some not finite'}"))
    except Exception as exc:  # anything torch cannot load as plain tensors is refused
        found.append(check("weights", False, f"not a plain state_dict: {type(exc).__name__}: {exc}"))
    spent = privacy.get("epsilon")
    accounted = spent is not None and math.isfinite(spent) and spent <= epsilon * 1.001
    found.append(check("privacy", accounted,
                        f"accountant ε {spent:.4g} for target ε {epsilon:g}" if spent is not None
                        else "no accountant figure: the output is not differentially private"))
    score, baseline = metrics.get("accuracy", metrics.get("rmse")), metrics.get("baseline")
    if score is not None and baseline is not None:
        better = score > baseline if "accuracy" in metrics else score < baseline
        found.append(check("beats_baseline", better, f"{score:.4f} against the trivial model's {baseline:.4f}",
                            blocking=False))
    return found


# --- code-to-data outputs ----------------------------------------------------------------

CODE_OUTPUT_TYPES = {".csv", ".json", ".txt", ".md"}
CODE_OUTPUT_FILES_MAX = 20
IDENTIFIER_COLUMNS = ("unit_id", "building_id")
# A private row is "verbatim" in an output row that holds its area and its rent, both exact.
VERBATIM_COLUMNS = ("area_m2", "monthly_rent")
COUNT_HEADER = re.compile(r"(^|[_\s])(count|counts|n|cnt|num|number|freq|frequency|rows|records|total|size)($|[_\s])",
                          re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{5,}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def code_output_checks(output: Path, private, *, max_bytes: int, min_cell_count: int) -> list[dict]:
    """Checks of a code-to-data job's held output against the private rows it ran on
    (`private`: a pyarrow Table with IDENTIFIER_COLUMNS and VERBATIM_COLUMNS). The details
    name files and counts, never a private value: the applicant reads them too."""
    files = sorted(p for p in output.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    strange = [p.name for p in files if p.suffix.lower() not in CODE_OUTPUT_TYPES]
    found = [
        check("output_files", 0 < len(files) <= CODE_OUTPUT_FILES_MAX and not strange,
               f"{len(files)} files" + (f"; not allowed: {', '.join(strange[:5])} (allowed: "
                                        f"{', '.join(sorted(CODE_OUTPUT_TYPES))})" if strange else "")
               + ("" if files else " (the job wrote nothing to outputs/)")),
        check("output_size", total <= max_bytes, f"{total} bytes (limit {max_bytes})"),
    ]
    texts = {p.name: p.read_text(errors="replace") for p in files if p.suffix.lower() in CODE_OUTPUT_TYPES
             and total <= max_bytes}
    identifiers = set()
    for column in IDENTIFIER_COLUMNS:
        if column in private.column_names:
            identifiers.update(v for v in private[column].to_pylist() if v)
    leaked = {name: len(set(_TOKEN.findall(text)) & identifiers) for name, text in texts.items()}
    leaked = {k: v for k, v in leaked.items() if v}
    found.append(check("identifiers", not leaked,
                        "no private identifier appears in the output" if not leaked else
                        "private identifiers appear in " + ", ".join(f"{k} ({v})" for k, v in leaked.items())))
    pairs = _verbatim_pairs(private)
    verbatim = {name: n for name, text in texts.items() if (n := _count_verbatim(text, pairs))}
    found.append(check("verbatim_rows", not verbatim,
                        "no private row appears verbatim" if not verbatim else
                        "private rows (their exact area and rent together) appear in "
                        + ", ".join(f"{k} ({v} rows)" for k, v in verbatim.items())))
    small = {name: n for name, text in texts.items() if name.lower().endswith(".csv")
             and (n := _small_cells(text, min_cell_count))}
    found.append(check("small_cells", not small,
                        f"no count below {min_cell_count}" if not small else
                        f"counts between 1 and {min_cell_count - 1} in "
                        + ", ".join(f"{k} ({v} cells)" for k, v in small.items())))
    return found


def _verbatim_pairs(private) -> set[tuple[float, float]]:
    if not all(c in private.column_names for c in VERBATIM_COLUMNS):
        return set()
    a, b = (private[c].to_pylist() for c in VERBATIM_COLUMNS)
    return {(round(x, 2), round(y, 2)) for x, y in zip(a, b) if x is not None and y is not None}


def _count_verbatim(text: str, pairs: set) -> int:
    if not pairs:
        return 0
    hits = 0
    for line in text.splitlines()[:100_000]:
        numbers = {round(float(n), 2) for n in _NUMBER.findall(line)}
        if len(numbers) >= 2 and any((x, y) in pairs for x in numbers for y in numbers if x != y):
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
