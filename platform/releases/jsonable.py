"""`json.dumps(..., default=)` hooks for what numpy and Arrow hand the release code: their
scalars become the Python values they hold. A release report takes numbers only, so anything
else there is a bug (`strict`); a package's or a map's released attributes take any value a
column may hold, written as its text (`as_text`)."""
from __future__ import annotations

import numpy as np


def strict(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def as_text(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
