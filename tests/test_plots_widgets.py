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


# -- runs kept and compared ---------------------------------------------------------------------------

def test_every_train_is_a_run_labelled_by_what_differs(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    trainer = classifier()
    panel = lk.ControlPanel(trainer, bundle(), epochs=2, mode="headless")
    panel.set(lr=0.1, optimizer="sgd").train()
    panel.reset()
    panel.set(lr=0.001, optimizer="adam").train()
    assert [r.settings["lr"] for r in panel.runs] == [0.1, 0.001]
    assert [r.label for r in panel.runs] == ["#1 lr 0.1 · sgd", "#2 lr 0.001 · adam"]
    for run in panel.runs:
        assert len(run.history.steps) == run.steps == 2 * 10 and run.history.epochs[-1]["val_accuracy"] >= 0
        assert run.seconds > 0 and run.stop_reason is None
    # the comparison: one legend entry per run, the last one bold, each curve's steps its own
    fig = panel.compare()
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["#1 lr 0.1 · sgd", "#2 lr 0.001 · adam"]
    widths = {t.legendgroup: t.line.width for t in fig.data}
    assert widths["run2"] > widths["run1"]
    assert {t.yaxis or "y" for t in fig.data} == {"y", "y2"} and fig.layout.yaxis2.title.text == "val_accuracy"
    # headless, each train() shows the comparison so far as plain plotly JSON
    assert len(shown) == 2 and len([t for t in shown[1][PLOTLY_MIME]["data"] if t["showlegend"]]) == 2
    table = lk.widgets.runs_table(panel.runs, sort="best val loss")
    assert table.count("<tr>") == 3 and "best val_accuracy" in table
    panel.clear_runs()
    assert panel.runs == [] and trainer.step == 20       # the model is kept


def test_reset_keeps_the_runs_and_a_continued_run_says_so(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    panel = lk.ControlPanel(classifier(), bundle(), epochs=1, mode="headless")
    panel.train()
    panel.train()                                   # continues the same model
    assert panel.runs[1].settings["from step"] == 10 and panel.runs[1].history.steps[0]["step"] == 11
    panel.reset()
    assert len(panel.runs) == 2 and panel.trainer.step == 0
    assert "stay on the chart" in panel.status.value


def test_runs_against_time_and_a_short_diverged_run_is_visible(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    panel = lk.ControlPanel(classifier(), bundle(), epochs=1, mode="headless")
    panel.train()
    fig = lk.widgets.runs_figure(panel.runs, x="time")
    assert fig["layout"]["xaxis"]["title"]["text"] == "seconds"
    assert fig["data"][0]["x"] == sorted(fig["data"][0]["x"]) and fig["data"][0]["x"][-1] > 0
    with pytest.raises(ValueError, match="x must be 'step' or 'time'"):
        lk.widgets.runs_figure(panel.runs, x="epoch")
    h = lk.History()
    h.steps = [{"step": i, "loss": v} for i, v in [(1, 2.0), (2, 50.0), (3, 9e5)]]
    spec = lk.plots.figure_dict(h)
    first = spec["data"][0]
    assert first["mode"] == "lines+markers" and first["opacity"] == 1 and spec["layout"]["showlegend"]
    assert spec["layout"]["yaxis"]["type"] == "log" and spec["layout"]["yaxis"]["dtick"] == 1
    empty = lk.plots.figure_dict(lk.History())
    assert empty["layout"]["xaxis"]["rangemode"] == "nonnegative"


def test_figure_colours_and_axis_titles(monkeypatch):
    trainer = classifier()
    trainer.fit(bundle(), epochs=2)
    spec = lk.plots.figure_dict(trainer.history)
    colors = {t["name"]: t["line"]["color"] for t in spec["data"]}
    assert colors["val_accuracy"] not in (colors["val loss"], colors["train loss (epoch)"])
    assert spec["layout"]["yaxis"]["title"]["text"] == "loss"
    assert spec["layout"]["yaxis2"]["title"]["text"] == "accuracy"


def test_exact_learning_rate_from_code_slider_and_box(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    trainer = classifier()
    panel = lk.ControlPanel(trainer, bundle(), epochs=1, mode="live")
    panel.set(lr=0.167)
    assert panel.lr_value == 0.167 and panel.lr_text.value == 0.167 and trainer.lr == 0.167
    panel.lr.value = 10 ** -0.8          # the front end echoes the value snapped to its grid (0.158)
    assert panel.lr_value == 0.167
    panel.lr_text.value = 0.05           # typed into the box: used as typed
    assert panel.lr_value == 0.05 and trainer.lr == 0.05
    panel.lr.value = 10 ** -0.5          # a real move of the slider: its value, to 3 digits
    assert panel.lr_value == 0.316
    panel.lr_text.value = 1e6            # out of range: refused, the box goes back
    assert panel.lr_value == 0.316 and panel.lr_text.value == 0.316 and "outside" in panel.status.value
    panel.set(lr=0.0501)
    panel.train()
    assert panel.runs[-1].settings["lr"] == 0.0501 and trainer.history.steps[-1]["lr"] == 0.0501


def test_set_checks_every_value_naming_the_control(monkeypatch):
    panel = lk.ControlPanel(classifier(), bundle(), epochs=2, mode="headless",
                            params={"width": [8, 16], "drop": (0.0, 0.5)}, build=lambda width, drop: None)
    with pytest.raises(TypeError, match="epochs must be an int, got float 2.5"):
        panel.set(epochs=2.5)
    with pytest.raises(ValueError, match=r"optimizer='nadam' is not one of the options of the 'optimizer' "
                                         r"control: \['sgd'"):
        panel.set(optimizer="nadam")
    with pytest.raises(ValueError, match=r"width=32 is not one of .*\[8, 16\]"):
        panel.set(width=32)
    with pytest.raises(ValueError, match=r"drop=0.9 is outside"):
        panel.set(drop=0.9)
    with pytest.raises(ValueError, match="no control named 'steps'"):
        panel.set(steps=3)
    panel.set(epochs=3, width=16)
    with pytest.raises(TypeError):
        panel.set(epochs=5, width=16, drop="x")           # nothing changes when one value is wrong
    assert panel.epochs.value == 3


def test_train_is_refused_while_a_fit_runs(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    trainer = classifier()

    class Slow(lk.Callback):
        def on_batch_end(self, trainer, logs):
            time.sleep(0.002)

    trainer.callbacks.append(Slow())
    panel = lk.ControlPanel(trainer, bundle(), epochs=20, mode="live")
    assert panel.train_in_background() is not None
    assert panel.train_in_background() is None and "already" in panel.status.value
    with pytest.raises(RuntimeError, match="already running"):
        panel.train()
    assert panel.running and len(panel.runs) == 1
    panel.wait(30)
    assert trainer.epoch == 20 and "Done: step 200" in panel.status.value
    started = threading.Event()             # a fit started elsewhere on the same trainer (a cell)

    class Hold(lk.Callback):
        def on_batch_end(self, trainer, logs):
            started.set()
            time.sleep(0.01)

    other = threading.Thread(target=trainer.fit, args=(bundle(),), kwargs={"steps": 500, "callbacks": [Hold()]})
    other.start()
    assert started.wait(30)
    with pytest.raises(RuntimeError, match="already running"):
        panel.train()
    trainer.stop()
    other.join(30)


def test_step_based_panel_with_a_live_sample(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    seen = []

    def sample(trainer, temperature):
        seen.append(temperature)
        return f"step {trainer.step} at T={temperature}"

    built = []

    def build(width):
        built.append(width)
        return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2))

    panel = lk.ControlPanel(classifier(), bundle(), steps=25, eval_every=10, mode="live", sample=sample,
                            build=build, params={"width": [8, 16], "temperature": (0.1, 2.0, 0.1)})
    panel.set(steps=25, temperature=0.5)
    panel.train()
    run = panel.runs[-1]
    assert run.settings["steps"] == 25 and panel.trainer.step == 25 and built == [8]
    assert [s for s, _ in run.samples] == [10, 20, 25] and seen == [0.5] * 3
    assert "step 25 at T=0.5" in panel.sample_box.value
    panel.set(temperature=1.0)
    panel.train()                            # temperature is no build argument: same model
    assert built == [8] and panel.trainer.step == 50
    with pytest.raises(ValueError, match="no control named 'epochs'"):
        panel.set(epochs=3)
    with pytest.raises(ValueError, match="not both"):
        lk.ControlPanel(classifier(), bundle(), epochs=2, steps=3)


def test_live_panel_chart_is_plain_figure_state(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    panel = lk.ControlPanel(classifier(), bundle(), epochs=2, mode="live")
    panel.train()
    panel.set(lr=0.05).train()
    out = panel.chart.widget.outputs[0]["data"][PLOTLY_MIME]
    assert [t["name"] for t in out["data"] if t["showlegend"]] == ["#1 lr 0.01", "#2 lr 0.05"]
    assert "<table" in panel.table.value and panel.table.value.count("<tr>") == 3


def test_stop_cuts_an_evaluation_short(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)

    class SlowToEvaluate(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(2, 2)

        def forward(self, x):
            if not self.training:
                time.sleep(0.1)               # 10 validation batches: a 1 s evaluation
            return self.layer(x)

    b = bundle()
    b = lk.data.DataBundle(b.train, DataLoader(b.val.dataset, batch_size=8), None, {})
    trainer = lk.Trainer(SlowToEvaluate(), loss="cross_entropy", device="cpu")
    panel = lk.ControlPanel(trainer, b, epochs=5, mode="live")


def test_late_echoes_of_values_set_from_code_change_nothing(monkeypatch):
    """Three sets in one cell: the front end's snapped echoes arrive after it, in order."""
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    panel = lk.ControlPanel(classifier(), bundle(), epochs=1, mode="live", lr_range=(1e-3, 10))
    for lr in (1e-3, 0.1, 1.5):
        panel.set(lr=lr)
    for echo in (1e-3, 0.1, 10 ** 0.2):      # 1.5 comes back as 1.585, the nearest grid point
        panel.lr.value = echo
    assert panel.lr_value == 1.5 and panel.trainer.lr == 1.5 and panel.lr_text.value == 1.5
    panel.lr.value = 10 ** -1.5               # then the learner moves the slider: that one counts
    assert panel.lr_value == 0.0316
