"""Decision-boundary figures and the BoundaryPlot callback (headless, live and script)."""
import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit as lk
from labkit.plots import PLOTLY_MIME
from labkit.viz import BoundaryPlot, decision_boundary_figure


def points(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=g)
    return X, (X[:, 0] > 0).long()           # the true boundary is the line x1 = 0


def vertical_line_model(n_outputs=1):
    """Logit = 5 * x1: P(class 1) > 0.5 exactly right of x1 = 0."""
    model = nn.Linear(2, n_outputs)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[-1, 0] = 5.0
    return model


def test_binary_figure_shows_probability_and_boundary_where_the_model_puts_it():
    X, y = points()
    fig = decision_boundary_figure(vertical_line_model(), X, y, grid=50)
    contour = fig.data[0]
    assert isinstance(contour, go.Contour) and contour.contours.start == contour.contours.end == 0.5
    z, xs = np.asarray(contour.z), np.asarray(contour.x)
    assert z.shape == (50, 50) and z.dtype == np.float32
    assert (z[:, xs > 0.05] > 0.5).all() and (z[:, xs < -0.05] < 0.5).all()
    assert fig.layout.meta["accuracy"] == 1.0 and "100.0%" in fig.layout.title.text
    assert [t.name for t in fig.data[1:]] == ["class 0", "class 1"]
    assert xs[0] == pytest.approx(float(X[:, 0].min()) - 0.5)


def test_two_logit_softmax_model_is_read_as_binary_and_accuracy_counts_mistakes():
    X, y = points()
    y_flipped = y.clone()
    y_flipped[:50] = 1 - y_flipped[:50]       # a quarter of the labels now disagree with the model
    fig = decision_boundary_figure(vertical_line_model(2), X, y_flipped, grid=20)
    assert isinstance(fig.data[0], go.Contour)
    assert fig.layout.meta["accuracy"] == pytest.approx(0.75)


def test_multiclass_background_is_the_predicted_class():
    X, _ = points()
    y = torch.bucketize(X[:, 0].contiguous(), torch.tensor([-0.5, 0.5]))   # 3 bands along x1
    centers = torch.tensor([-1.0, 0.0, 1.0])

    def three_bands(x):                       # a plain function works as the model too
        return -(x[:, :1] - centers) ** 2     # the nearest center wins: bands split at -0.5, 0.5

    fig = decision_boundary_figure(three_bands, X, y, grid=30)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert set(np.unique(np.asarray(heat.z)).tolist()) == {0.0, 1.0, 2.0}
    assert fig.layout.meta["accuracy"] == 1.0
    assert len(fig.data) == 4


def test_saved_figure_stays_small():
    X, y = points(1000)
    fig = decision_boundary_figure(vertical_line_model(), X, y)        # default grid=100
    assert len(fig.to_json()) < 120_000


@pytest.mark.parametrize("call, error, words", [
    (lambda m, X, y: decision_boundary_figure(m, X[:, :1], y), ValueError, ["X", "[N, 2]", "[200, 1]"]),
    (lambda m, X, y: decision_boundary_figure(m, X, y[:10]), ValueError, ["y", "200", "10"]),
    (lambda m, X, y: decision_boundary_figure(m, X, y, grid=5), ValueError, ["grid", "[10, 1000]", "5"]),
    (lambda m, X, y: decision_boundary_figure(m, X, y, grid=50.0), TypeError, ["grid", "float"]),
    (lambda m, X, y: decision_boundary_figure(m, X, y, margin=-1), ValueError, ["margin", "-1"]),
    (lambda m, X, y: decision_boundary_figure("linear", X, y), TypeError, ["model", "str"]),
    (lambda m, X, y: BoundaryPlot(X, y, every=0), ValueError, ["every", "0"]),
    (lambda m, X, y: BoundaryPlot(X, y, mode="browser"), ValueError, ["mode", "browser", "live"]),
    (lambda m, X, y: decision_boundary_figure(lambda x: x[:, :, None], X, y), ValueError, ["logits"]),
])
def test_bad_arguments_say_what_is_wrong(call, error, words):
    X, y = points()
    with pytest.raises(error) as info:
        call(vertical_line_model(), X, y)
    for word in words:
        assert word in str(info.value)


def test_model_is_evaluated_in_eval_mode_and_left_as_it_was():
    X, y = points()
    model = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.9), nn.Linear(16, 1))
    a = decision_boundary_figure(model, X, y, grid=20).data[0].z
    b = decision_boundary_figure(model, X, y, grid=20).data[0].z
    assert np.array_equal(np.asarray(a), np.asarray(b))         # no dropout noise
    assert model.training


def fit_with(callback, epochs=2):
    X, y = points(160)
    loader = DataLoader(TensorDataset(X, y.float()), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    trainer = lk.Trainer(nn.Linear(2, 1), loss="bce", optimizer="sgd", lr=0.5, device="cpu")
    trainer.fit(loader, epochs=epochs, callbacks=[callback])
    return trainer


def test_headless_shows_one_static_figure_at_fit_end(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    X, y = points(160)
    plot = BoundaryPlot(X, y, mode="headless", grid=40, title="logistic")
    trainer = fit_with(plot)
    assert len(shown) == 1 and plot.widget is None
    data = shown[0][PLOTLY_MIME]
    assert data["layout"]["title"]["text"].startswith(f"logistic · step {trainer.step} · accuracy")
    assert len(json.dumps(shown[0])) < 60_000
    assert plot.figure.layout.meta["accuracy"] > 0.9              # a line through x1 = 0 is learnable


def test_live_updates_one_widget_in_place_every_n_steps(monkeypatch):
    displayed = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **k: displayed.append(obj))
    X, y = points(160)
    plot = BoundaryPlot(X, y, every=5, grid=20, mode="live", max_fps=1e6)
    redraws = []
    original = plot.refresh
    monkeypatch.setattr(plot, "refresh", lambda t, fig=None: (redraws.append(t.step), original(t, fig)))
    trainer = fit_with(plot)                                          # 20 steps
    assert len(displayed) == 1 and isinstance(displayed[0], go.FigureWidget)
    assert redraws == [0, 5, 10, 15, 20, 20]                         # start, every 5 steps, end
    assert plot.widget.layout.title.text.startswith(f"step {trainer.step}")
    before = np.asarray(plot.widget.data[0].z).copy()
    widget = plot.widget
    fit_with(plot, epochs=1)                                          # another fit: the same widget
    assert plot.widget is widget and len(displayed) == 1
    assert not np.array_equal(before, np.asarray(plot.widget.data[0].z))


def test_script_mode_shows_nothing(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    X, y = points(160)
    plot = BoundaryPlot(X, y, mode="script")
    trainer = fit_with(plot)
    assert shown == [] and plot.widget is None
    assert plot.figure.layout.title.text.startswith(f"step {trainer.step}")    # for write_html, say
