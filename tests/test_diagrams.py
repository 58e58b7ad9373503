"""labkit.diagrams: the figures build, and what they show is computed, not drawn by hand."""
import numpy as np
import pytest
import torch

from labkit import diagrams


def test_convolution_output_is_the_real_convolution():
    fig = diagrams.convolution(size=6, kernel_size=3, seed=1)
    x, k, out = (np.array(fig.layout.meta[name]) for name in ("input", "kernel", "output"))
    expected = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float32)[None, None],
                                          torch.tensor(k, dtype=torch.float32)[None, None])[0, 0]
    assert np.array_equal(out, expected.int().numpy())         # PyTorch's conv2d is a cross-correlation too
    assert len(fig.frames) == 16 and len(fig.layout.sliders[0].steps) == 16
    last = fig.frames[-1].layout.annotations[-1].text
    assert last.endswith(f"<b>{out[-1, -1]}</b>")


def test_ring_allreduce_ends_with_the_sum_everywhere():
    g = np.random.default_rng(0).integers(1, 9, size=(5, 5))
    states = diagrams.ring_allreduce_steps(g)
    assert len(states) == 1 + 2 * 4
    assert np.array_equal(states[-1], np.tile(g.sum(0), (5, 1)))
    after_scatter = states[4]                                  # worker r owns the complete chunk r + 1
    for r in range(5):
        assert list(np.flatnonzero(after_scatter[r] == g.sum(0))) == [(r + 1) % 5]
    for before, after in zip(states, states[1:]):              # one chunk changes per worker per step
        assert ((before != after).sum(1) <= 1).all()
    with pytest.raises(ValueError, match="shape"):
        diagrams.ring_allreduce_steps(np.zeros((3, 4)))


@pytest.mark.parametrize("make", [diagrams.unrolled_rnn, diagrams.lstm_cell, diagrams.transformer_block,
                                  lambda: diagrams.transformer_block(pre_norm=False), diagrams.all_reduce])
def test_diagrams_build_and_serialize(make):
    fig = make()
    assert fig.layout.title.text and len(fig.to_json()) > 1000


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="kernel_size"):
        diagrams.convolution(size=4, kernel_size=5)
    with pytest.raises(ValueError, match="steps"):
        diagrams.unrolled_rnn(steps=1)
    with pytest.raises(ValueError, match="workers"):
        diagrams.all_reduce(workers=1)
