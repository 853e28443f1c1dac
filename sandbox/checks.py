"""Automatic checks on a job's held output, run before a steward sees it.

Each check is a dict: name, passed, detail, and blocking (a failed blocking check keeps
the output from release; the others inform the steward).
"""
from __future__ import annotations

import math
from pathlib import Path

MODEL_MAX_BYTES = 50 * 1024 * 1024
ALLOWED_MODEL_FILES = {"model.pt", "result.json"}


def _check(name: str, passed: bool, detail: str, *, blocking: bool = True) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail, "blocking": blocking}


def model_checks(output: Path, *, epsilon: float, privacy: dict, metrics: dict) -> list[dict]:
    import torch

    files = {p.name for p in output.iterdir()}
    weights = output / "model.pt"
    found = [
        _check("output_files", files <= ALLOWED_MODEL_FILES and "model.pt" in files,
               f"files: {', '.join(sorted(files)) or 'none'} (allowed: {', '.join(sorted(ALLOWED_MODEL_FILES))})"),
    ]
    size = weights.stat().st_size if weights.exists() else 0
    found.append(_check("output_size", 0 < size <= MODEL_MAX_BYTES,
                        f"{size} bytes (limit {MODEL_MAX_BYTES})"))
    try:
        state = torch.load(weights, weights_only=True, map_location="cpu")
        finite = all(torch.isfinite(t).all().item() for t in state.values())
        params = sum(t.numel() for t in state.values())
        found.append(_check("weights", finite, f"{len(state)} tensors, {params} parameters"
                                               f"{'' if finite else ', some not finite'}"))
    except Exception as exc:  # anything torch cannot load as plain tensors is refused
        found.append(_check("weights", False, f"not a plain state_dict: {type(exc).__name__}: {exc}"))
    spent = privacy.get("epsilon")
    accounted = spent is not None and math.isfinite(spent) and spent <= epsilon * 1.001
    found.append(_check("privacy", accounted,
                        f"accountant ε {spent:.4g} for target ε {epsilon:g}" if spent is not None
                        else "no accountant figure: the output is not differentially private"))
    score, baseline = metrics.get("accuracy", metrics.get("rmse")), metrics.get("baseline")
    if score is not None and baseline is not None:
        better = score > baseline if "accuracy" in metrics else score < baseline
        found.append(_check("beats_baseline", better, f"{score:.4f} against the trivial model's {baseline:.4f}",
                            blocking=False))
    return found
