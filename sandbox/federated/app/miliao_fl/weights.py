"""Model weights as Flower's list of arrays and back: one flat float32 vector, the state_dict's
tensors one after another in its order.

One array, not one per tensor: Flower sends each array of a message as objects of its own
(the array and its chunks), and the SuperLink answers a request for every object it stores or
hands out. Six tensors made 13 objects of every model and every masked update, most of the
SuperLink's work in a round; one vector makes 3. Nothing that reads the list tells the two
apart: FedAvg and FedAdam work element by element, the DP wrappers clip and noise the norm of
the whole list, and SecAgg+ masks and quantizes element by element.
"""
from __future__ import annotations


def arrays_of(state: dict) -> list:
    import numpy as np

    return [np.concatenate([t.detach().cpu().numpy().astype(np.float32).ravel() for t in state.values()])]


def state_from(model, arrays) -> dict:
    """`model`'s state_dict with the values of `arrays` (as `arrays_of` made them)."""
    import numpy as np
    import torch

    shapes = {k: tuple(t.shape) for k, t in model.state_dict().items()}
    sizes = [int(np.prod(s)) for s in shapes.values()]
    if len(arrays) != 1 or arrays[0].ndim != 1 or arrays[0].size != sum(sizes):
        got = ", ".join(str(tuple(a.shape)) for a in arrays)
        raise ValueError(f"parameters: expected one vector of {sum(sizes)} values, got arrays of shape {got}")
    flat = np.asarray(arrays[0], dtype=np.float32)
    state, start = {}, 0
    for (key, shape), size in zip(shapes.items(), sizes):
        state[key] = torch.from_numpy(flat[start:start + size].reshape(shape).copy())
        start += size
    return state
