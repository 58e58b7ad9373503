"""Tests for labkit.models.tcn: causal padding, the receptive-field formula, shapes, validation, learning."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from labkit.models import TCN, CausalConv1d, SequenceModel


pytestmark = pytest.mark.usefixtures("seed_and_one_thread")


def reach(fn, x, t):
    """Input steps whose gradient reaches the output at step t (fn maps [B, T, F] to [B, C, T])."""
    x = x.clone().requires_grad_(True)
    fn(x)[:, :, t].sum().backward()
    return set(torch.nonzero(x.grad.abs().sum(dim=(0, 2))).flatten().tolist())


@pytest.mark.parametrize("k,d", [(1, 1), (2, 1), (3, 2), (5, 3)])
def test_causal_conv_keeps_length_and_sees_only_the_past(k, d):
    conv = CausalConv1d(2, 3, k, dilation=d)
    x = torch.randn(4, 2, 20)
    assert conv(x).shape == (4, 3, 20)
    assert conv.receptive_field == (k - 1) * d + 1
    seen = reach(lambda z: conv(z.transpose(1, 2)), x.transpose(1, 2), 12)
    # the taps at 12, 12 - d, ..., 12 - (k-1)d: never a future step
    assert seen == {12 - i * d for i in range(k)}


def test_causal_conv_equals_a_both_sides_padded_conv_cut_at_the_right():
    conv = CausalConv1d(2, 3, 3, dilation=2)
    x = torch.randn(4, 2, 16)
    both = F.conv1d(x, conv.conv.weight, conv.conv.bias, padding=4, dilation=2)   # pads 4 left and 4 right
    assert torch.allclose(conv(x), both[:, :, :16], atol=1e-6)


@pytest.mark.parametrize("k,dilations", [(2, (1, 2, 4, 8, 16)), (3, (1, 2, 4)), (2, (1, 1, 1)), (4, (1, 3))])
def test_receptive_field_formula_matches_the_gradient(k, dilations):
    model = TCN(1, 1, channels=16, kernel_size=k, dilations=dilations)
    R = 1 + (k - 1) * sum(dilations)
    assert model.receptive_field == R
    T = R + 10
    x = torch.randn(16, T, 1)
    # the last step sees back exactly R - 1 steps, never further; no step sees the future
    seen = reach(model.features, x, T - 1)
    assert min(seen) == T - R and max(seen) == T - 1
    seen = reach(model.features, x, 3)
    assert min(seen) == max(0, 4 - R) and max(seen) == 3


def test_tcn_interface_matches_sequence_model():
    tcn, rnn = TCN(2, 3, channels=8), SequenceModel(2, 8, 3)
    x = torch.randn(5, 32, 2)
    assert tcn(x).shape == rnn(x).shape == (5, 3)
    assert TCN(1, 1, channels=4)(torch.randn(5, 12)).shape == (5, 1)    # [B, T] for one feature


def test_tcn_validation_names_the_parameter():
    with pytest.raises(ValueError, match="dilations"):
        TCN(1, 1, dilations=())
    with pytest.raises(ValueError, match="dilations"):
        TCN(1, 1, dilations=(1, 0))
    with pytest.raises(TypeError, match="dilations"):
        TCN(1, 1, dilations=4)
    with pytest.raises(ValueError, match="kernel_size"):
        TCN(1, 1, kernel_size=0)
    with pytest.raises(ValueError, match="dropout"):
        TCN(1, 1, dropout=1.5)
    with pytest.raises(ValueError, match=r"input_size=2.*\[5, 7, 3\]"):
        TCN(2, 1)(torch.randn(5, 7, 3))
    with pytest.raises(ValueError, match="channels before time"):
        CausalConv1d(2, 3, 2)(torch.randn(5, 7, 2))      # [B, T, C]: time and channels swapped


def test_tcn_learns_a_lagged_copy():
    # y = x[t - 5]: inside the receptive field of kernel 2, dilations (1, 2, 4) -> R = 8
    x = torch.randn(64, 16, 1)
    y = x[:, -6]
    model = TCN(1, 1, channels=16, kernel_size=2, dilations=(1, 2, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = F.mse_loss(model(x), y).item()
    for _ in range(100):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
