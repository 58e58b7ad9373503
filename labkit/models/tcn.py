"""Convolutions over time: a causal, dilated 1-D convolution and a TCN built from them.

A temporal convolutional network (WaveNet, van den Oord et al. 2016; Bai et al. 2018) reads a
sequence with 1-D convolutions instead of a recurrence. Two ideas make it a forecaster:
- causal padding: the output at step t sees inputs t, t-1, ... only, never the future;
- dilation: layer l skips d_l - 1 inputs between its taps, so the receptive field grows with
  the sum of the dilations (doubling them makes it exponential in depth) at a constant cost per layer.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils import check_int, check_probability


class CausalConv1d(nn.Module):
    """nn.Conv1d on [B, C, T] whose output at step t depends on inputs t - (k-1)·d ... t only.

    The trick is the padding: (k - 1)·d zeros on the LEFT and none on the right, so the output
    has the input's length T and its window at step t ends at t. (nn.Conv1d's own padding= pads
    both sides, which centres the window and lets step t see the future.)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        check_int("kernel_size", kernel_size)
        check_int("dilation", dilation)
        self.left_padding = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    @property
    def receptive_field(self) -> int:
        return self.left_padding + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.size(1) != self.conv.in_channels:
            raise ValueError(f"CausalConv1d expects [B, {self.conv.in_channels}, T] (channels before time), "
                             f"got input of shape {list(x.shape)}")
        return self.conv(F.pad(x, (self.left_padding, 0)))


def _check_dilations(dilations) -> tuple[int, ...]:
    if isinstance(dilations, (str, bytes)) or not hasattr(dilations, "__iter__"):
        raise TypeError(f"dilations must be a sequence of ints >= 1, e.g. (1, 2, 4, 8), got {dilations!r}")
    dilations = tuple(dilations)
    if not dilations or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1
                                for d in dilations):
        raise ValueError(f"dilations must be a non-empty sequence of ints >= 1, e.g. (1, 2, 4, 8), got {dilations!r}")
    return tuple(int(d) for d in dilations)


class TCN(nn.Module):
    """Read a sequence [B, T, F] and predict [B, output_size] from the last time step.

    The same interface as SequenceModel, so the two are interchangeable in a Trainer. Layout:
    a 1x1 convolution lifts the F input features to `channels`, then one residual block per
    dilation, h <- h + dropout(relu(CausalConv1d(h))), then a linear head on the features of the
    last step. Its receptive field — how many past inputs the last step can see — is

        R = 1 + (kernel_size - 1) · sum(dilations),

    e.g. kernel 2 with dilations 1, 2, 4, 8, 16 sees exactly 32 steps.
    """

    def __init__(self, input_size: int, output_size: int, channels: int = 32, kernel_size: int = 2,
                 dilations=(1, 2, 4, 8, 16), dropout: float = 0.0):
        super().__init__()
        check_int("input_size", input_size)
        check_int("output_size", output_size)
        check_int("channels", channels)
        check_int("kernel_size", kernel_size)
        self.dilations = _check_dilations(dilations)
        check_probability("dropout", dropout)
        self.input_size, self.kernel_size = input_size, kernel_size
        self.lift = nn.Conv1d(input_size, channels, 1)
        self.blocks = nn.ModuleList(CausalConv1d(channels, channels, kernel_size, d) for d in self.dilations)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(channels, output_size)

    @property
    def receptive_field(self) -> int:
        # each block adds (k - 1)·d past steps to what the one below it could see; the 1x1 lift adds none
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step features [B, channels, T]; step t depends on inputs t - R + 1 ... t only."""
        if x.dim() == 2 and self.input_size == 1:
            x = x.unsqueeze(-1)  # a batch of univariate series [B, T] -> [B, T, 1]
        if x.dim() != 3 or x.size(-1) != self.input_size:
            raise ValueError(f"TCN was built for input_size={self.input_size} (inputs [B, T, {self.input_size}]), "
                             f"got input of shape {list(x.shape)}")
        h = self.lift(x.transpose(1, 2))        # [B, T, F] -> [B, F, T]: Conv1d wants channels before time
        for block in self.blocks:
            h = h + self.drop(torch.relu(block(h)))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[:, :, -1])
