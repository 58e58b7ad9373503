"""Trainer: the loop, evaluation, validation of hyperparameters, stopping and checkpoints."""
import math
import os
import signal
import threading

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit as lk


def regression_loader(n=256, batch_size=32, seed=0, shuffle=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


def make_trainer(**kw):
    lk.seed_everything(0)
    kw.setdefault("loss", "mse")
    kw.setdefault("optimizer", "sgd")
    kw.setdefault("lr", 0.05)
    kw.setdefault("device", "cpu")
    return lk.Trainer(nn.Linear(3, 1), **kw)


def test_fit_epochs_learns_linear_map_and_continues():
    trainer = make_trainer()
    loader = regression_loader()
    history = trainer.fit(loader, epochs=3)
    assert trainer.epoch == 3 and trainer.step == 3 * len(loader)
    assert len(history.steps) == trainer.step and len(history.epochs) == 3
    history = trainer.fit(loader, epochs=20)              # fit again continues
    assert trainer.epoch == 23
    w = trainer.model.weight.detach().squeeze()
    assert torch.allclose(w, torch.tensor([1.0, -2.0, 0.5]), atol=1e-2)
    assert history.epochs[-1]["loss"] < 1e-3
    assert history.best is not None and history.best["loss"] == min(r["loss"] for r in history.epochs)


def test_fit_steps_mode_stops_mid_epoch_and_evaluates():
    trainer = make_trainer()
    loader = regression_loader()
    trainer.fit(lk.data.DataBundle(loader, regression_loader(shuffle=False), None, {}), steps=13)
    assert trainer.step == 13
    assert trainer.history.epochs[-1]["step"] == 13 and "val_loss" in trainer.history.epochs[-1]


def test_eval_every_adds_rows():
    trainer = make_trainer()
    bundle = lk.data.DataBundle(regression_loader(), regression_loader(shuffle=False), None, {})
    trainer.fit(bundle, steps=40, eval_every=10)
    assert [r["step"] for r in trainer.history.epochs] == [8, 10, 16, 20, 24, 30, 32, 40]


def test_classification_metrics_and_evaluate():
    lk.seed_everything(0)
    x = torch.randn(300, 2)
    y = (x[:, 0] + x[:, 1] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=30, shuffle=True)
    trainer = lk.Trainer(nn.Linear(2, 2), loss="cross_entropy", optimizer="adam", lr=0.05,
                         metrics=["accuracy", "f1"], device="cpu")
    trainer.fit(loader, epochs=10)
    scores = trainer.evaluate(loader)
    assert set(scores) == {"loss", "accuracy", "f1"}
    assert scores["accuracy"] > 0.95
    manual = (trainer.predict(x).argmax(1) == y).float().mean().item()
    assert scores["accuracy"] == pytest.approx(manual, abs=1e-6)


def test_language_model_logits_are_flattened():
    vocab, T = 7, 5
    idx = torch.randint(0, vocab, (40, T + 1))
    loader = DataLoader(TensorDataset(idx[:, :-1], idx[:, 1:]), batch_size=8)
    model = nn.Sequential(nn.Embedding(vocab, 16), nn.Linear(16, vocab))
    trainer = lk.Trainer(model, loss="cross_entropy", metrics=["accuracy"], device="cpu")
    trainer.fit(loader, epochs=1)
    scores = trainer.evaluate(loader)
    assert math.isfinite(scores["loss"]) and 0 <= scores["accuracy"] <= 1


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=-0.1), ValueError, "lr must be a finite number > 0"),
    (dict(lr=0), ValueError, "lr must be"),
    (dict(lr="0.1"), TypeError, "lr must be a number"),
    (dict(optimizer="adamm"), ValueError, "unknown optimizer 'adamm'"),
    (dict(loss="mean_squared"), ValueError, "unknown loss 'mean_squared'"),
    (dict(metrics=["acc"]), ValueError, "unknown metric 'acc'"),
    (dict(device="tpu"), ValueError, "device='tpu' is not a known device"),
    (dict(grad_clip=-1.0), ValueError, "grad_clip must be a finite number > 0"),
    (dict(accumulate=0), ValueError, "accumulate must be an int >= 1"),
    (dict(amp="fp8"), ValueError, "amp must be"),
    (dict(callbacks=[print]), TypeError, "callbacks must be labkit.Callback"),
])
def test_bad_hyperparameters_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_trainer(**kwargs)


def test_cuda_requested_without_gpu_suggests_auto():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA GPU.*device='auto'"):
        lk.pick_device("cuda")


def test_bad_fit_arguments():
    trainer = make_trainer()
    loader = regression_loader()
    with pytest.raises(ValueError, match="exactly one of epochs=N or steps=N"):
        trainer.fit(loader)
    with pytest.raises(ValueError, match="epochs must be an int >= 0, got -1"):
        trainer.fit(loader, epochs=-1)
    with pytest.raises(TypeError, match="epochs must be an int, got float"):
        trainer.fit(loader, epochs=2.5)
    with pytest.raises(TypeError, match="DataBundle or a torch DataLoader"):
        trainer.fit([1, 2, 3], epochs=1)


def test_lr_setter_validates_and_applies_to_optimizer():
    trainer = make_trainer()
    trainer.lr = 0.2
    assert trainer.optimizer.param_groups[0]["lr"] == 0.2
    with pytest.raises(ValueError):
        trainer.lr = -1


def test_divergence_stops_with_message_and_keeps_weights_finite():
    trainer = make_trainer(lr=5.0)
    with pytest.warns(lk.DivergenceWarning, match=r"diverged at step \d+.*lower learning rate"):
        trainer.fit(regression_loader(), epochs=50)
    assert "diverged" in trainer.stop_reason
    assert trainer.epoch < 50
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert len(trainer.history.steps) == trainer.step          # history kept


def test_nan_loss_is_caught():
    class Nan(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            return self.lin(x) * (float("nan") if self.training and self.calls() > 3 else 1.0)

        def calls(self, n=[0]):
            n[0] += 1
            return n[0]

    trainer = lk.Trainer(Nan(), optimizer="sgd", lr=0.01, device="cpu")
    with pytest.warns(lk.DivergenceWarning, match="step 4: the loss is NaN/inf"):
        trainer.fit(regression_loader(), epochs=2)
    assert trainer.step == 4


def test_stop_from_callback_and_from_another_thread():
    class StopAt(lk.Callback):
        def on_batch_end(self, trainer, logs):
            if logs["step"] == 5:
                trainer.stop("enough")

    trainer = make_trainer(callbacks=[StopAt()])
    trainer.fit(regression_loader(), epochs=10)
    assert trainer.step == 5 and trainer.stop_reason == "enough"

    trainer = make_trainer()
    started = threading.Event()

    class Signal(lk.Callback):
        def on_batch_end(self, trainer, logs):
            started.set()

    t = threading.Thread(target=trainer.fit, args=(regression_loader(n=4096, batch_size=1),),
                         kwargs=dict(epochs=100, callbacks=[Signal()]))
    t.start()
    started.wait(5)
    trainer.stop("from thread")
    t.join(10)
    assert not t.is_alive() and trainer.stop_reason == "from thread"
    assert len(trainer.history.steps) == trainer.step > 0


def test_ctrl_c_stops_at_batch_boundary_keeping_history():
    class Interrupt(lk.Callback):
        def on_batch_end(self, trainer, logs):
            if logs["step"] == 3:
                os.kill(os.getpid(), signal.SIGINT)

    trainer = make_trainer(callbacks=[Interrupt()])
    trainer.fit(regression_loader(), epochs=5)
    assert trainer.stop_reason == "interrupted"
    assert trainer.step in (3, 4) and len(trainer.history.steps) == trainer.step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_gradient_accumulation_matches_big_batch():
    x = torch.randn(64, 3)
    y = x.sum(1, keepdim=True)
    torch.manual_seed(0)
    a = lk.Trainer(nn.Linear(3, 1), optimizer="sgd", lr=0.1, device="cpu", accumulate=4)
    torch.manual_seed(0)
    b = lk.Trainer(nn.Linear(3, 1), optimizer="sgd", lr=0.1, device="cpu")
    a.fit(DataLoader(TensorDataset(x, y), batch_size=8), epochs=1)
    b.fit(DataLoader(TensorDataset(x, y), batch_size=32), epochs=1)
    assert a.step == b.step == 2
    assert torch.allclose(a.model.weight, b.model.weight, atol=1e-6)
    assert a.history.steps[0]["loss"] == pytest.approx(b.history.steps[0]["loss"], rel=1e-5)


def test_grad_clip_logs_norm():
    trainer = make_trainer(grad_clip=0.1)
    trainer.fit(regression_loader(), steps=3)
    assert all("grad_norm" in r for r in trainer.history.steps)


def test_amp_bf16_on_cpu_trains():
    trainer = make_trainer(amp=True)
    assert trainer.amp_dtype == torch.bfloat16
    trainer.fit(regression_loader(), epochs=5)
    assert trainer.history.epochs[-1]["loss"] < trainer.history.epochs[0]["loss"]


def test_optimizer_class_and_instance():
    model = nn.Linear(3, 1)
    t1 = lk.Trainer(model, optimizer=torch.optim.SGD, lr=0.01, device="cpu")
    assert isinstance(t1.optimizer, torch.optim.SGD) and t1.optimizer.param_groups[0]["lr"] == 0.01
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    assert lk.Trainer(model, optimizer=opt, device="cpu").optimizer is opt


def test_reset_and_set_model():
    trainer = make_trainer()
    w0 = trainer.model.weight.detach().clone()
    trainer.fit(regression_loader(), epochs=2)
    trainer.reset()
    assert torch.equal(trainer.model.weight, w0) and trainer.step == 0 and not trainer.history.steps
    trainer.set_model(nn.Linear(3, 1))
    trainer.fit(regression_loader(), epochs=1)
    assert trainer.step == len(regression_loader())


def _mlp_loader(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, :1] * 2).tanh()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(123))


def _dropout_trainer():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    return lk.Trainer(model, optimizer="adam", lr=1e-2, device="cpu",
                      callbacks=[lk.LRSchedule("cosine", warmup=3)])


def test_checkpoint_resume_is_bit_identical(tmp_path):
    lk.seed_everything(0)
    straight = _dropout_trainer()
    straight.fit(_mlp_loader(0), epochs=4)

    class SaveAndStopAfter2(lk.Callback):
        def on_epoch_end(self, trainer, logs):
            if trainer.epoch == 2:
                trainer.save_checkpoint(tmp_path / "ckpt.pt")
                trainer.stop("interrupted for the test")

    lk.seed_everything(0)
    first = _dropout_trainer()
    first.fit(_mlp_loader(0), epochs=4, callbacks=[SaveAndStopAfter2()])
    assert first.epoch == 2
    np.random.rand(5), torch.rand(7)                   # disturb every RNG before resuming

    lk.seed_everything(99)
    resumed = _dropout_trainer()
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    resumed.fit(_mlp_loader(0), epochs=2)             # a new loader: its shuffle state comes back too
    assert resumed.callbacks[0].total == 4 * 6        # the cosine schedule kept its 4-epoch horizon
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["loss"] for r in resumed.history.steps] == [r["loss"] for r in straight.history.steps]


def test_checkpoint_errors_name_the_file(tmp_path):
    trainer = make_trainer()
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        trainer.load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt.pt.*not a readable labkit checkpoint"):
        trainer.load_checkpoint(bad)
    other = lk.Trainer(nn.Linear(5, 2), device="cpu")
    path = other.save_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt.*different model"):
        trainer.load_checkpoint(path)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="plain.pt.*not written by Trainer.save_checkpoint"):
        trainer.load_checkpoint(plain)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    trainer = make_trainer()
    path = trainer.save_checkpoint(tmp_path / "c.pt")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]       # no temp file left behind


def test_accumulation_leftover_micro_batches_step_at_epoch_end():
    loader = DataLoader(TensorDataset(torch.randn(40, 3), torch.randn(40, 1)), batch_size=8)  # 5 batches
    trainer = lk.Trainer(nn.Linear(3, 1), optimizer="sgd", lr=0.1, device="cpu", accumulate=2)
    trainer.fit(loader, epochs=1)
    assert trainer.step == 3 and trainer.planned_steps == 3        # 2 + 2 + the leftover 1
    assert all(p.grad is None for p in trainer.model.parameters())
    assert trainer._micro_losses == []
