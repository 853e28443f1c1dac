"""Chinese resident identity numbers (GB 11643-1999): the check digit, shared by the
synthetic generator (which must make valid ones) and the PII scrubber (which must only
redact valid ones)."""
from __future__ import annotations

import numpy as np

_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_CHECK = np.array(list("10X98765432"))


def id_check_digit(first17: str) -> str:
    """The 18th character for 17 leading digits."""
    digits = np.frombuffer(first17.encode("ascii"), dtype=np.uint8) - ord("0")
    if digits.shape != (17,) or digits.max() > 9:
        raise ValueError(f"first17 must be 17 digits, not {first17!r}")
    return str(_CHECK[int(digits @ _WEIGHTS) % 11])


def id_check_digits(first17: np.ndarray) -> np.ndarray:
    """Vectorised check digits for an (n, 17) integer array of digits."""
    return _CHECK[(first17.astype(np.int64) @ _WEIGHTS) % 11]


def is_valid_id_number(value: str) -> bool:
    return (
        len(value) == 18
        and value[:17].isdigit()
        and value[:17].isascii()
        and id_check_digit(value[:17]) == value[17].upper()
    )
