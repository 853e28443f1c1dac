"""Model weights as Flower's list of arrays and back, in the state_dict's order."""
from __future__ import annotations


def arrays_of(state: dict) -> list:
    return [t.detach().cpu().numpy() for t in state.values()]


def state_from(model, arrays) -> dict:
    import torch

    keys = list(model.state_dict().keys())
    if len(keys) != len(arrays):
        raise ValueError(f"parameters: expected {len(keys)} arrays, got {len(arrays)}")
    return {k: torch.from_numpy(a.copy()) for k, a in zip(keys, arrays)}
