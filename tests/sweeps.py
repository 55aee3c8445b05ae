"""Helpers shared by the sweep, store and report tests."""

import numpy as np

import rnnstab

# identity σ with an orthogonal W: J_t = W^t, so ‖J_t‖₂ = δ^t exactly and the rate is log δ; at δ = 1.5 the float32
# state overflows near t = 216, at δ = 1.2 it does not
OVERFLOWING_AT_1_5 = rnnstab.Grid(
    activation=("identity",),
    init=("orthogonal",),
    delta=(1.2, 1.5),
    hidden=(16,),
    steps=(300,),
    dtype=("float32",),
    batch=2,
    seeds=(0,),
)


def assert_identical(a, b):
    """Two load_sweep(..., traces=True) frames hold the same records with bit-identical numbers."""
    assert list(a["record"]) == list(b["record"])
    scalars = [c for c in a.columns if c not in ("log_spectral", "log_frobenius")]
    assert a[scalars].equals(b[scalars])
    for column in ("log_spectral", "log_frobenius"):
        for x, y in zip(a[column], b[column], strict=True):
            assert np.array_equal(x, y)  # bit for bit
