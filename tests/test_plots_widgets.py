"""LivePlot, History.plot, show() and ControlPanel (headless and with a background thread)."""
import json
import threading
import time

import ipywidgets as W
import plotly.graph_objects as go
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit as lk
from labkit.plots import PLOTLY_MIME, history_figure


def bundle():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    mk = lambda a, b, shuffle: DataLoader(TensorDataset(a, b), batch_size=16, shuffle=shuffle,
                                          generator=torch.Generator().manual_seed(0))
    return lk.data.DataBundle(mk(x[:160], y[:160], True), mk(x[160:], y[160:], False), None, {})


def classifier():
    return lk.Trainer(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2)), loss="cross_entropy",
                      lr=1e-2, metrics=["accuracy"], device="cpu")


def test_history_figure_has_loss_and_metric_traces():
    trainer = classifier()
    trainer.fit(bundle(), epochs=3)
    fig = trainer.history.plot(title="curves")
    names = [t.name for t in fig.data]
    assert names == ["train loss (step)", "train loss (epoch)", "val loss", "val_accuracy"]
    assert list(fig.data[0].x) == list(range(1, trainer.step + 1))
    assert fig.data[3].xaxis == "x2"


def test_history_figure_decimates_long_runs():
    h = lk.History()
    h.steps = [{"step": i, "loss": 1.0 / i} for i in range(1, 20001)]
    fig = history_figure(h)
    assert len(fig.data[0].x) <= 2001 and fig.data[0].x[-1] == 20000


def test_liveplot_headless_shows_one_small_static_figure(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    plot = lk.LivePlot(mode="headless")
    trainer = classifier()
    trainer.fit(bundle(), epochs=2, callbacks=[plot])
    assert len(shown) == 1 and plot.widget is None
    bundle_ = shown[0]
    assert set(bundle_) == {PLOTLY_MIME, "text/plain"}
    assert len(json.dumps(bundle_)) < 100_000
    assert bundle_[PLOTLY_MIME]["data"][0]["name"] == "train loss (step)"


def test_liveplot_live_updates_widget_in_place_and_throttles(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    plot = lk.LivePlot(mode="live", max_fps=1000)
    trainer = classifier()
    trainer.fit(bundle(), epochs=2, callbacks=[plot])
    assert isinstance(plot.widget, W.Output)          # its state is the figure: it survives a reload
    spec = plot.live.spec
    assert len(spec["data"][0]["x"]) == trainer.step
    assert [t["name"] for t in spec["data"]][-1] == "val_accuracy"
    assert plot.widget.outputs[0]["data"][PLOTLY_MIME] is spec

    slow = lk.LivePlot(mode="live", max_fps=0.001)            # at most one redraw per 1000 s
    draws = []
    monkeypatch.setattr(slow, "refresh", lambda h: draws.append(len(h.steps)))
    trainer.fit(bundle(), epochs=1, callbacks=[slow])
    assert len(draws) <= 3                                     # start, maybe one, end


def test_liveplot_script_mode_is_silent_and_can_save_html(tmp_path, capsys):
    out = tmp_path / "curves.html"
    trainer = classifier()
    trainer.fit(bundle(), epochs=1, callbacks=[lk.LivePlot(mode="script", save=str(out))])
    assert out.exists() and "plotly" in out.read_text()[:5000].lower()
    assert capsys.readouterr().out == ""


def test_show_emits_mimetype_only(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    lk.show(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), mode="headless")
    assert shown[0][1] is True and set(shown[0][0]) == {PLOTLY_MIME, "text/plain"}
    lk.show(go.Figure(), mode="script")
    assert len(shown) == 1


def test_frontend_override(monkeypatch):
    monkeypatch.setenv("LABKIT_FRONTEND", "headless")
    assert lk.frontend() == "headless"
    monkeypatch.setenv("LABKIT_FRONTEND", "nope")
    with pytest.raises(ValueError, match="LABKIT_FRONTEND"):
        lk.frontend()
    monkeypatch.delenv("LABKIT_FRONTEND")
    assert lk.frontend() == "script"            # pytest is no notebook kernel


def test_control_panel_headless_train_uses_controls(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    trainer = classifier()
    panel = lk.ControlPanel(trainer, bundle(), epochs=2, mode="headless")
    panel.set(lr=0.05, optimizer="sgd", epochs=3)
    history = panel.train()
    assert trainer.lr == pytest.approx(0.05) and isinstance(trainer.optimizer, torch.optim.SGD)
    assert trainer.epoch == 3 and history is trainer.history
    assert "Done: step" in panel.status.value and "lr 0.05" in panel.status.value
    assert [set(s) for s in shown] == [{PLOTLY_MIME, "text/plain"}]      # the run's final curves
    with pytest.raises(ValueError, match="no control named 'width'"):
        panel.set(width=3)
    with pytest.raises(ValueError, match="lr must be"):
        panel.set(lr=-1)
    with pytest.raises(ValueError, match=r"lr=100 is outside the control's range \[1e-05, 10\].*lr_range"):
        panel.set(lr=100)
    with pytest.raises(ValueError, match="epochs=500 is outside"):
        panel.set(epochs=500)


def test_control_panel_batch_size_and_params_rebuild(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    built = []

    def build(hidden, act):
        built.append((hidden, act))
        return nn.Sequential(nn.Linear(2, hidden), nn.Tanh() if act == "tanh" else nn.ReLU(), nn.Linear(hidden, 2))

    b = bundle()
    data = lk.data.make_loaders(b.train.dataset, b.val.dataset, batch_size=16)
    trainer = classifier()
    panel = lk.ControlPanel(trainer, data, epochs=1, mode="headless",
                            params={"hidden": [8, 64], "act": ["relu", "tanh"]}, build=build)
    panel.set(hidden=64, act="tanh", batch_size=32)
    panel.train()
    assert built == [(64, "tanh")] and trainer.model[0].out_features == 64
    assert trainer.step == 160 // 32
    panel.train()                                  # same params: keeps training the same model
    assert built == [(64, "tanh")] and trainer.step == 2 * 160 // 32
    panel.reset()
    assert trainer.step == 0 and len(built) == 2
    with pytest.raises(ValueError, match="params need a build"):
        lk.ControlPanel(trainer, data, params={"hidden": [8]})


def test_control_panel_background_thread_stop_and_live_lr(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    trainer = classifier()
    seen = []

    class Spy(lk.Callback):
        def on_batch_end(self, trainer, logs):
            seen.append(logs["lr"])
            time.sleep(0.002)

    trainer.callbacks.append(Spy())
    panel = lk.ControlPanel(trainer, bundle(), epochs=100, mode="live")
    panel.train_button.click()
    assert panel.running and panel.stop_button.disabled is False
    while len(seen) < 5:
        time.sleep(0.01)
    panel.lr.value = 0.002                         # the slider, mid-run
    n = len(seen)
    while len(seen) < n + 3:
        time.sleep(0.01)
    t0 = time.perf_counter()
    panel.stop_button.click()
    panel.wait(5)
    assert time.perf_counter() - t0 < 1.0 and not panel.running
    assert seen[-1] == pytest.approx(0.002)
    assert "Stopped at step" in panel.status.value and "Stop button" in panel.status.value
    assert panel.train_button.disabled is False
    assert len(trainer.history.steps) == trainer.step < 100 * 10


def test_control_panel_shows_errors_from_background_thread(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("shape trouble")

    trainer = lk.Trainer(nn.Sequential(nn.Linear(2, 2), Broken()), loss="cross_entropy", device="cpu")
    panel = lk.ControlPanel(trainer, bundle(), epochs=1, mode="live")
    panel.train_in_background()
    panel.wait(5)
    assert isinstance(panel.error, RuntimeError) and "shape trouble" in panel.status.value
    with pytest.raises(RuntimeError, match="shape trouble"):
        panel.train()                              # synchronous: the error propagates


def test_panel_repr_mimebundle_is_a_widget():
    panel = lk.ControlPanel(classifier(), bundle(), epochs=1, mode="headless")
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()
