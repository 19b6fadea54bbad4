"""One weighted row sum (:func:`dpmodel.xp.weighted_row_sum`) and its gradients by explicit loops.

Shared by the tests of the backends' native row sums (``tests/jax``, ``tests/tf``).
"""

import numpy as np

RNG = np.random.default_rng(3)
TABLE = RNG.normal(size=(50, 7))
INDEX = RNG.integers(0, 50, size=(5, 11))
INDEX[1, :4] = 17  # a repeated row adds up
WEIGHT = RNG.normal(size=(5, 11))
GRAD = RNG.normal(size=(5, 7))
#: ``dpmodel.xp.ROW_SUM_CHUNK_ELEMENTS`` that give 1 column per step; 3 (11 = 3 + 3 + 3 + 2, the last
#: step padded); and all 11 in one step
CHUNKINGS = [1, 3 * 7, 1 << 11]


def loops() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value (5, 7), d(value . GRAD)/d WEIGHT (5, 11) and d(value . GRAD)/d TABLE (50, 7)."""
    value = np.zeros((5, 7))
    d_weight = np.zeros((5, 11))
    d_table = np.zeros_like(TABLE)
    for s in range(5):
        for col, (k, w) in enumerate(zip(INDEX[s], WEIGHT[s])):
            value[s] += w * TABLE[k]
            d_weight[s, col] = TABLE[k] @ GRAD[s]
            d_table[k] += w * GRAD[s]
    return value, d_weight, d_table
