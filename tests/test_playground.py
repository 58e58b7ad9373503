"""Playground: TensorFlow-Playground-style 2-D classification on a real Trainer."""
import json

import numpy as np
import pytest
import torch

import labkit as lk
from labkit.playground import DATASETS, make_points
from labkit.plots import PLOTLY_MIME


@pytest.mark.parametrize("dataset", DATASETS)
def test_datasets_are_two_balanced_classes_in_range(dataset):
    X, y = make_points(dataset, n=200, noise=0.1, seed=1)
    assert X.shape == (200, 2) and X.abs().max() <= 6 and set(y.tolist()) == {0, 1}
    assert 80 <= int(y.sum()) <= 120
    X2, _ = make_points(dataset, n=200, noise=0.1, seed=1)
    assert torch.equal(X, X2)


def test_train_returns_the_history_and_features_make_circles_easy():
    pg = lk.Playground(dataset="circles", features=["x1", "x2"], hidden=[], mode="script")
    linear = pg.train(epochs=20).epochs[-1]["val_accuracy"]
    pg.set(features=["x1²", "x2²"])
    assert pg.trainer.epoch == 0                      # new features: a fresh model
    squares = pg.train(epochs=20).epochs[-1]["val_accuracy"]
    assert linear < 0.8 < 0.95 <= squares             # no line separates a ring from its centre
    assert squares == pytest.approx(pg.accuracy("test"))


def test_the_boundary_changes_while_it_trains_and_the_figure_shows_every_neuron():
    pg = lk.Playground(dataset="xor", hidden=[4, 3], activation="tanh", lr=0.03, mode="script")
    before = pg._maps()[1].copy()
    pg.train(epochs=5)
    after = pg._maps()[1]
    assert np.abs(after - before).max() > 0.05
    spec = pg.figure_dict()
    heatmaps = [t for t in spec["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 4 + 3 + 1                 # one map per hidden neuron, and the boundary
    assert len(json.dumps(spec)) < 150_000
    assert "test accuracy" in spec["layout"]["title"]["text"]
    assert {t["name"] for t in spec["data"] if t["type"] == "scatter"} >= {"train loss", "test loss"}


def test_regularization_shrinks_the_weights():
    def weight_norm(pg):
        return sum(float(m.weight.detach().abs().sum()) for m in pg.model.modules() if isinstance(m, torch.nn.Linear))

    plain = lk.Playground(dataset="gaussian", hidden=[4], lr=0.1, mode="script")
    plain.train(epochs=20)
    l1 = lk.Playground(dataset="gaussian", hidden=[4], lr=0.1, regularization="l1", regularization_rate=0.01,
                       mode="script")
    l1.train(epochs=20)
    assert weight_norm(l1) < weight_norm(plain)
    assert l1.history.epochs[-1]["val_accuracy"] > 0.9


def test_settings_are_checked():
    pg = lk.Playground(mode="script")
    for bad, words in [(dict(dataset="swirl"), "dataset must be one of"), (dict(hidden=[9]), r"hidden\[0\]"),
                       (dict(features=[]), "features must be"), (dict(noise=0.9), "noise must be in"),
                       (dict(activation="elu"), "activation must be"), (dict(batch_size=0), "batch_size"),
                       (dict(depth=3), "no setting named 'depth'")]:
        with pytest.raises((ValueError, TypeError), match=words):
            pg.set(**bad)


def test_headless_repr_is_the_static_view_and_live_builds_the_widget(monkeypatch):
    pg = lk.Playground(dataset="moons", mode="headless")
    bundle = pg._repr_mimebundle_()
    assert PLOTLY_MIME in bundle and "widget" not in json.dumps(list(bundle))
    live = lk.Playground(dataset="moons", mode="live", max_fps=1000)
    assert "application/vnd.jupyter.widget-view+json" in live._repr_mimebundle_()
    live.epochs.value = 3
    live.train_in_background()
    live.wait(60)
    assert live.trainer.epoch == 3 and live.live.draws > 2 and "Done at epoch 3" in live.status.value
    live._widgets["dataset"].value = "spiral"           # a control: a new data set and model
    assert live.settings["dataset"] == "spiral" and live.trainer.epoch == 0
    live._widgets["hidden"].value = "4, x"
    assert "hidden" in live.status.value and live._widgets["hidden"].value == "4, 2"
