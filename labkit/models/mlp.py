"""A multi-layer perceptron; with no hidden layers it is linear or softmax regression."""
from __future__ import annotations

import torch
import torch.nn as nn

from .utils import check_bool, check_choice, check_int, check_probability

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "identity": nn.Identity,  # a "deep" network that is still linear: a good exercise
}


class MLP(nn.Sequential):
    """Linear -> [BatchNorm] -> activation -> [Dropout], once per hidden size, then a Linear.

    MLP(1, [], 1) is linear regression and MLP(64, [], 10) with a cross-entropy loss is
    softmax regression; model[0] is then the single nn.Linear. Inputs with more than two
    dims (images [B, 1, 8, 8]) are flattened to [B, in_features].
    """

    def __init__(self, in_features: int, hidden_sizes: list[int], out_features: int,
                 activation: str = "relu", dropout: float = 0.0, batchnorm: bool = False):
        check_int("in_features", in_features)
        check_int("out_features", out_features)
        if isinstance(hidden_sizes, int) or not isinstance(hidden_sizes, (list, tuple)):
            raise TypeError(f"hidden_sizes must be a list of layer widths such as [128, 64] "
                            f"([] for no hidden layer), got {hidden_sizes!r}")
        for i, width in enumerate(hidden_sizes):
            check_int(f"hidden_sizes[{i}]", width)
        check_choice("activation", activation, ACTIVATIONS)
        check_probability("dropout", dropout)
        check_bool("batchnorm", batchnorm)

        layers = []
        width_in = in_features
        for width in hidden_sizes:
            # BatchNorm subtracts the batch mean, which cancels any bias: skip it.
            layers.append(nn.Linear(width_in, width, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width_in = width
        layers.append(nn.Linear(width_in, out_features))  # raw scores/values: the loss adds softmax
        super().__init__(*layers)

        self.in_features = in_features
        self.hidden_sizes = list(hidden_sizes)
        self.out_features = out_features
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(1)
        if x.dim() != 2 or x.size(1) != self.in_features:
            raise ValueError(f"MLP was built for in_features={self.in_features} (inputs [B, "
                             f"{self.in_features}]), got input of shape {list(x.shape)}")
        return super().forward(x)
