"""A LeNet-style convolutional network for small square images (8x8 digits, 28x28 MNIST)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .utils import check_bool, check_int, check_probability


class CNN(nn.Module):
    """(Conv -> [BatchNorm] -> ReLU -> MaxPool) per entry of `channels`, then an MLP head.

    model.features is the convolutional body (look at its feature maps, or freeze it for
    transfer learning) and model.classifier the head (replace model.classifier[-1] to
    re-target a new set of classes).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, input_size: int = 8,
                 channels=(16, 32), kernel_size: int = 3, hidden: int = 64,
                 batchnorm: bool = False, dropout: float = 0.0):
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("n_classes", n_classes)
        check_int("input_size", input_size)
        if isinstance(channels, int) or not isinstance(channels, (list, tuple)) or not channels:
            raise TypeError(f"channels must be a non-empty list of conv widths such as (16, 32), "
                            f"got {channels!r}")
        for i, c in enumerate(channels):
            check_int(f"channels[{i}]", c)
        check_int("kernel_size", kernel_size)
        check_int("hidden", hidden)
        check_bool("batchnorm", batchnorm)
        check_probability("dropout", dropout)
        # Each stage halves the image (2x2 max-pool); it must stay at least 1 pixel wide.
        if input_size < 2 ** len(channels):
            raise ValueError(f"input_size={input_size} is too small for {len(channels)} conv/pool "
                             f"stages (each halves the image, so at least {2 ** len(channels)} "
                             f"is needed); pass fewer channels or a larger input_size")

        layers = []
        c_in = in_channels
        for c_out in channels:
            # "same" padding keeps H and W, so only the pooling shrinks the image.
            layers.append(nn.Conv2d(c_in, c_out, kernel_size, padding="same", bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)

        # Let the body tell us how many numbers it produces rather than doing the
        # arithmetic by hand; eval mode so batch norm does not learn from the dummy.
        self.features.eval()
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, in_channels, input_size, input_size)).numel()
        self.features.train()

        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )
        self.in_channels = in_channels
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.in_channels, self.input_size
        # Accept flat rows [B, C*H*W] (as an MLP gets them) and channel-less [B, H, W]
        # so the same data loaders feed both models.
        if x.dim() == 2 and x.size(1) == c * s * s:
            x = x.view(-1, c, s, s)
        elif x.dim() == 3 and c == 1 and x.shape[1:] == (s, s):
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1:] != (c, s, s):
            raise ValueError(f"CNN was built for {c}x{s}x{s} images (input_size={s}, "
                             f"in_channels={c}: inputs [B, {c}, {s}, {s}]), got input of shape "
                             f"{list(x.shape)}; build it with CNN(input_size=..., in_channels=...) "
                             f"matching your data")
        return self.classifier(self.features(x))
