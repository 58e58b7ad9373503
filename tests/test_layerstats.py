"""LayerStats: per-layer gradient, weight, update and activation statistics as plain rows."""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit as lk
from labkit.plots import PLOTLY_MIME


def loader(n=128, batch=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x.sum(1) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)


def test_rows_every_n_steps_in_forward_order():
    torch.manual_seed(0)
    # defined out of forward order: the rows follow the forward pass, not the definition
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(8, 2)
            self.first = nn.Linear(4, 8)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.out(self.act(self.first(x)))

    stats = lk.LayerStats(every=2, mode="script")
    trainer = lk.Trainer(Net(), loss="cross_entropy", optimizer="sgd", lr=0.1, device="cpu", callbacks=[stats])
    trainer.fit(loader(), epochs=2)                   # 8 steps
    assert sorted({r["step"] for r in stats.rows}) == [1, 2, 4, 6, 8]
    assert stats.layers() == ["first", "out"]
    row = stats.rows[0]
    assert set(row) == {"step", "layer", "kind", "grad_norm", "weight_norm", "update_ratio", "act_mean",
                        "act_std", "dead", "saturated"}
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in stats.rows)
    assert stats.rows[1]["dead"] is None            # the output layer has no ReLU after it
    assert 0 <= row["dead"] <= 1
    # hooks live for the recorded step only
    assert not trainer.model.first._forward_hooks and not trainer.model.act._forward_hooks


def test_plain_sgd_update_ratio_is_lr_times_gradient_over_weight():
    torch.manual_seed(0)
    stats = lk.LayerStats(every=1, mode="script")
    trainer = lk.Trainer(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)), loss="cross_entropy",
                         optimizer="sgd", lr=0.05, device="cpu", callbacks=[stats])
    trainer.fit(loader(), epochs=1)
    for r in stats.rows:   # SGD moves the weights by exactly lr * gradient
        assert r["update_ratio"] * r["weight_norm"] == pytest.approx(0.05 * r["grad_norm"], rel=1e-3)


def test_dead_relus_and_saturated_sigmoids_are_seen():
    lin = nn.Linear(4, 6)
    with torch.no_grad():
        lin.bias[:3] = -100.0                        # three units can never switch on
    stats = lk.LayerStats(every=1, mode="script")
    trainer = lk.Trainer(nn.Sequential(lin, nn.ReLU(), nn.Linear(6, 2)), loss="cross_entropy", optimizer="sgd",
                         lr=0.01, device="cpu", callbacks=[stats])
    trainer.fit(loader(), epochs=1)
    assert stats.last("dead")["0"] == pytest.approx(0.5)

    big = nn.Linear(4, 5)
    with torch.no_grad():
        big.weight.mul_(200)
    stats = lk.LayerStats(every=1, mode="script")
    trainer = lk.Trainer(nn.Sequential(big, nn.Sigmoid(), nn.Linear(5, 2)), loss="cross_entropy", optimizer="sgd",
                         lr=0.01, device="cpu", callbacks=[stats])
    trainer.fit(loader(), epochs=1)
    assert stats.last("saturated")["0"] > 0.8
    assert stats.last("dead")["0"] is None


def test_vanishing_gradients_in_a_deep_sigmoid_network():
    torch.manual_seed(0)
    stats = lk.LayerStats(every=1, mode="script")
    model = lk.models.MLP(4, [32] * 6, 2, activation="sigmoid")
    trainer = lk.Trainer(model, loss="cross_entropy", optimizer="sgd", lr=0.01, device="cpu", callbacks=[stats])
    trainer.fit(loader(), steps=1)
    grads = [r["grad_norm"] for r in stats.rows]
    assert grads[0] < grads[-1] / 10                  # the first layer learns far slower than the last


def test_headless_figure_and_live_widget(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    stats = lk.LayerStats(every=2, mode="headless", title="inside")
    trainer = lk.Trainer(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), loss="cross_entropy",
                         device="cpu", callbacks=[stats])
    trainer.fit(loader(), epochs=1)
    assert len(shown) == 1 and PLOTLY_MIME in shown[0]
    names = {t.get("name") for t in shown[0][PLOTLY_MIME]["data"]}
    assert {"loss", "Linear 0", "Linear 2"} <= names
    live = lk.LayerStats(every=2, mode="live")
    trainer.fit(loader(), epochs=1, callbacks=[live])
    assert live.live is not None and live.live.spec["data"][0]["name"] == "loss"
    assert len(live.figure().data) >= 7


def test_bad_arguments():
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        lk.LayerStats(every=0)
    with pytest.raises(TypeError, match="layers must be nn.Module classes"):
        lk.LayerStats(layers=["Linear"])
    with pytest.raises(ValueError, match="key must be one of"):
        lk.LayerStats().series("nope", "0")
