"""14_keras: the digits MLP and CNN in Keras 3 (PyTorch backend) and in PyTorch/labkit, side by side,
and two common mistakes of the Keras API caught (quick mode)."""
import importlib.util

import pytest

# Keras is part of the [dev] install; checked without importing it (its default backend is TensorFlow,
# which is not installed: the notebook itself selects the PyTorch backend before importing Keras)
pytestmark = [pytest.mark.notebook,
              pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs labkit[keras]")]


def test_14_keras_quick(run_notebook):
    r = run_notebook("14_keras").records
    # the same architectures: parameter counts agree exactly, layer for layer
    assert r["mlp_params"] == {"keras": 9610, "pytorch": 9610}
    assert r["cnn_params"]["keras"] == r["cnn_params"]["pytorch"] == 13706
    # quick mode trains 3 epochs: both learn (10 classes: chance is 0.1), and land close together
    # (2.5 standard errors of a difference of two accuracies on 359 test images at ~0.9 is ~0.05)
    for model in ("mlp_accuracy", "cnn_accuracy"):
        acc = r[model]
        assert min(acc.values()) > 0.5, acc
        assert abs(acc["keras"] - acc["pytorch"]) <= 0.08, acc
    # a callback in each framework saw every epoch's validation loss, and both curves fall
    curves = r["val_loss_curves"]
    assert len(curves["keras"]) == len(curves["pytorch"]) == 3
    assert curves["keras"][-1] < curves["keras"][0] and curves["pytorch"][-1] < curves["pytorch"][0]
    # the two Keras mistakes fail visibly
    assert r["positional_mistake_caught"] is True and r["input_shape_mistake_caught"] is True
    assert set(r["summary"]) == {"mlp", "cnn"}


def test_14_keras_parameters_are_used(run_notebook):
    r = run_notebook("14_keras", epochs=1, cnn_epochs=2).records
    assert len(r["val_loss_curves"]["keras"]) == len(r["val_loss_curves"]["pytorch"]) == 1
