"""Fixtures shared by several test modules."""

import pytest

from tests.problems import trained_rnn


@pytest.fixture(scope="module")
def deep():
    """A trained 2-layer bidirectional tanh nn.RNN."""
    rnn, (before, after) = trained_rnn(num_layers=2, bidirectional=True)
    assert after < 0.8 * before  # it really trained
    return rnn
