"""The one hash that turns integer keys into a seed: a study's model seeds
(`search_spaces.seeds`) and each member's own random streams (`trainables.models`) both come
from it, so "same key, same seed" holds across the project."""

from __future__ import annotations

import numpy as np


def hashed_seed(*key: int) -> int:
    """A 63-bit seed from a hash of `key`: SeedSequence(key), first uint64 word, shifted right
    by one (a non-negative int64, as torch and numpy generators take)."""
    state = np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))
