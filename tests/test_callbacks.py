"""Callbacks: early stopping, checkpoints, LR schedules, progress bar, custom callbacks."""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit as lk


def bundle(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = x[:, :1] * 3 + 0.1 * torch.randn(n, 1, generator=g)
    train = DataLoader(TensorDataset(x[:150], y[:150]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[150:], y[150:]), batch_size=50)
    return lk.data.DataBundle(train, val, None, {})


class Recorder(lk.Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, trainer, logs): self.calls.append("fit_start")
    def on_epoch_start(self, trainer, logs): self.calls.append("epoch_start")
    def on_batch_end(self, trainer, logs): self.calls.append("batch")
    def on_epoch_end(self, trainer, logs): self.calls.append(("epoch_end", sorted(logs)))
    def on_fit_end(self, trainer, logs): self.calls.append("fit_end")


def test_hook_order_and_logs_are_plain_floats():
    rec = Recorder()
    trainer = lk.Trainer(nn.Linear(5, 1), lr=1e-2, device="cpu", metrics=["mae"], callbacks=[rec])
    trainer.fit(bundle(), epochs=2)
    assert rec.calls[0] == "fit_start" and rec.calls[-1] == "fit_end"
    assert rec.calls.count("batch") == trainer.step == 2 * 10
    assert rec.calls[1] == "epoch_start"
    epoch_end = [c for c in rec.calls if isinstance(c, tuple)]
    assert epoch_end[0][1] == sorted(["step", "epoch", "completed_epoch", "loss", "lr", "time",
                                      "val_loss", "val_mae"])
    for row in trainer.history.steps + trainer.history.epochs:
        assert all(isinstance(v, (int, float, bool)) for v in row.values())


def test_early_stopping_stops_and_restores_best_weights():
    # a learning rate that overshoots after a few epochs: validation loss stops improving
    lk.seed_everything(0)
    es = lk.EarlyStopping(monitor="val_loss", patience=2)
    trainer = lk.Trainer(nn.Sequential(nn.Linear(5, 64), nn.ReLU(), nn.Linear(64, 1)), optimizer="sgd",
                         lr=0.03, device="cpu", callbacks=[es])
    data = bundle(n=200)
    trainer.fit(data, epochs=300)
    assert trainer.stop_reason.startswith("early stopping")
    assert trainer.epoch < 300
    # weights are the best epoch's: evaluating them gives the best validation loss
    assert trainer.evaluate(data.val)["loss"] == pytest.approx(es.best, rel=1e-5)
    assert es.best == pytest.approx(min(r["val_loss"] for r in trainer.history.epochs))


def test_early_stopping_without_validation_says_what_to_do():
    trainer = lk.Trainer(nn.Linear(5, 1), device="cpu", callbacks=[lk.EarlyStopping()])
    with pytest.raises(ValueError, match="monitors 'val_loss'.*validation split.*monitor='loss'"):
        trainer.fit(bundle().train, epochs=2)


def test_early_stopping_bad_arguments():
    with pytest.raises(ValueError, match="patience must be an int >= 0"):
        lk.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode must be"):
        lk.EarlyStopping(mode="lowest")


def test_checkpoint_callback_writes_last_and_best(tmp_path):
    ck = lk.Checkpoint(tmp_path / "ck")
    trainer = lk.Trainer(nn.Linear(5, 1), lr=1e-2, device="cpu", callbacks=[ck])
    trainer.fit(bundle(), epochs=3)
    assert ck.last_path.exists() and ck.best_path.exists()
    fresh = lk.Trainer(nn.Linear(5, 1), lr=1e-2, device="cpu", callbacks=[lk.Checkpoint(tmp_path / "ck")])
    fresh.load_checkpoint(ck.last_path)
    assert fresh.step == trainer.step and fresh.epoch == 3
    assert len(fresh.history.epochs) == 3
    assert torch.equal(fresh.model.weight, trainer.model.weight)


@pytest.mark.parametrize("name, kwargs", [
    ("constant", {}), ("step", {"step_size": 1, "gamma": 0.5}), ("exponential", {"gamma": 0.5}),
    ("cosine", {"warmup": 5, "min_lr": 1e-4}), ("linear", {"warmup": 2}), ("onecycle", {"max_lr": 0.05}),
])
def test_lr_schedules_shape(name, kwargs):
    trainer = lk.Trainer(nn.Linear(5, 1), optimizer="sgd", lr=0.01, device="cpu",
                         callbacks=[lk.LRSchedule(name, **kwargs)])
    trainer.fit(bundle(), epochs=3)
    lrs = [r["lr"] for r in trainer.history.steps]   # the rate each step used
    if name == "constant":
        assert set(lrs) == {0.01}
    elif name in ("step", "exponential"):                  # per epoch: 0.01 -> 0.005 -> 0.0025
        assert lrs[0] == 0.01 and lrs[9] == 0.01 and lrs[10] == pytest.approx(0.005)
        assert lrs[-1] == pytest.approx(0.0025)
    elif name == "cosine":
        peak = max(lrs)
        assert lrs[0] == pytest.approx(0.002)                          # warm-up from lr/5
        assert lrs.index(peak) == 4 and peak == pytest.approx(0.01)   # after 5 warm-up steps
        assert lrs[-1] == pytest.approx(1e-4, rel=1e-3)
        assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    elif name == "linear":
        assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    elif name == "onecycle":
        assert max(lrs) == pytest.approx(0.05, rel=1e-2) and lrs[-1] < 1e-4


def test_lr_schedule_errors():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        lk.LRSchedule("cosin")
    with pytest.raises(TypeError, match="takes.*got \\['gama'\\]"):
        lk.LRSchedule("exponential", gama=0.5)


def test_lr_schedule_accepts_torch_scheduler_factory():
    sched = lk.LRSchedule(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.1))
    trainer = lk.Trainer(nn.Linear(5, 1), optimizer="sgd", lr=0.1, device="cpu", callbacks=[sched])
    trainer.fit(bundle(), steps=6)
    assert trainer.history.steps[4]["lr"] == pytest.approx(0.1)
    assert trainer.history.steps[5]["lr"] == pytest.approx(0.01)


def test_divergence_guard_is_on_by_default_and_can_be_turned_off():
    assert any(isinstance(c, lk.DivergenceGuard) for c in lk.Trainer(nn.Linear(2, 1), device="cpu").callbacks)
    assert not lk.Trainer(nn.Linear(2, 1), device="cpu", guard=False).callbacks


def test_progress_bar_headless_prints_one_line(capsys):
    bar = lk.ProgressBar()
    bar.mode = "headless"
    trainer = lk.Trainer(nn.Linear(5, 1), device="cpu", callbacks=[bar])
    trainer.fit(bundle(), epochs=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("step 20 · epoch 2 · loss") and "val_loss" in err[0]


def test_progress_bar_script_mode_runs(capsys):
    bar = lk.ProgressBar()
    bar.mode = "script"
    trainer = lk.Trainer(nn.Linear(5, 1), device="cpu", callbacks=[bar])
    trainer.fit(bundle(), epochs=1)
    assert bar.bar is None                      # closed at the end of fit


def test_divergence_guard_reference_loss_restarts_after_reset():
    x = torch.randn(128, 5)
    small = DataLoader(TensorDataset(x, x[:, :1] * 0.01), batch_size=32)
    large = DataLoader(TensorDataset(x, x[:, :1] * 3000.0), batch_size=32)   # losses ~1e7 from the start
    trainer = lk.Trainer(nn.Linear(5, 1), optimizer="sgd", lr=1e-3, device="cpu")
    trainer.fit(small, epochs=1)
    trainer.reset()
    trainer.fit(large, epochs=1)               # not an explosion: the first loss of this history is large
    assert trainer.stop_reason is None and trainer.epoch == 1


def test_lr_schedule_keeps_discriminative_rates():
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.001},
                           {"params": model[2].parameters(), "lr": 0.01}])
    trainer = lk.Trainer(model, optimizer=opt, device="cpu", callbacks=[lk.LRSchedule("cosine", min_lr=0.0)])
    assert trainer.lr == 0.001                 # an optimizer instance brings its own rate
    trainer.fit(bundle(), epochs=1)
    trainer.fit(bundle(), epochs=1)          # a second fit restarts from each group's base rate
    body, head = opt.param_groups
    assert body["initial_lr"] == 0.001 and head["initial_lr"] == 0.01
    assert trainer.history.steps[10]["lr"] == pytest.approx(0.001)   # first step of the second fit
