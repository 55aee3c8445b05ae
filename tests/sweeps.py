"""Helpers shared by the sweep and store tests."""

import numpy as np


def assert_identical(a, b):
    """Two load_sweep(..., traces=True) frames hold the same records with bit-identical numbers."""
    assert list(a["record"]) == list(b["record"])
    scalars = [c for c in a.columns if c not in ("log_spectral", "log_frobenius")]
    assert a[scalars].equals(b[scalars])
    for column in ("log_spectral", "log_frobenius"):
        for x, y in zip(a[column], b[column], strict=True):
            assert np.array_equal(x, y)  # bit for bit
