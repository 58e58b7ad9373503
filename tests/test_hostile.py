"""labkit used as a hostile user would: bad values, faults, interrupts, concurrency, checkpoints,
degenerate data. Each case asserts a clear error that names what to change, or the right result.

Areas (Trainer state and inputs, callbacks, checkpoints, interrupts, concurrency, degenerate data,
lr_find, reset/set_model, models, distributed launch). Everything is tiny: the file runs in seconds.
"""
import math
import os
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import labkit as lk
from labkit.lr_find import lr_find


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def loader(n=48, batch_size=8, seed=0, shuffle=True, features=3, **kw):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(n, features, generator=g)
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None, **kw)


def bundle(**kw):
    return lk.data.DataBundle(loader(**kw), loader(n=16, shuffle=False, seed=7), None, {})


def net(seed=0, dropout=0.2):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(dropout), nn.Linear(8, 1))


def trainer(model=None, **kw):
    kw.setdefault("optimizer", "adam")
    kw.setdefault("lr", 1e-2)
    kw.setdefault("device", "cpu")
    return lk.Trainer(model if model is not None else net(), **kw)


def weights(t):
    return {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def losses(t):
    return [r["loss"] for r in t.history.steps]


# ============================================================ Trainer inputs
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(lr=math.nan), ValueError, "lr must be a finite number > 0"),
    (dict(lr=math.inf), ValueError, "lr must be a finite number > 0"),
    (dict(lr=True), TypeError, "lr must be a number"),
    (dict(lr=None), TypeError, "lr must be a number"),
    (dict(weight_decay=math.inf), ValueError, "weight_decay must be a finite number >= 0"),
    (dict(weight_decay=-1e-4), ValueError, "weight_decay must be a finite number >= 0"),
    (dict(weight_decay=math.nan), ValueError, "weight_decay"),
    (dict(weight_decay="1e-4"), TypeError, "weight_decay"),
    (dict(grad_clip=0), ValueError, "grad_clip must be a finite number > 0"),
    (dict(grad_clip=math.inf), ValueError, "grad_clip"),
    (dict(grad_clip=math.nan), ValueError, "grad_clip"),
    (dict(grad_clip="1"), TypeError, "grad_clip"),
    (dict(accumulate=2.0), TypeError, "accumulate must be an int"),
    (dict(accumulate=True), TypeError, "accumulate must be an int"),
    (dict(accumulate=-3), ValueError, "accumulate must be an int >= 1"),
    (dict(loss=nn.MSELoss), TypeError, "write loss=MSELoss()"),
    (dict(loss="crossentropy"), ValueError, "did you mean 'cross_entropy'"),
    (dict(loss=3), TypeError, "loss must be"),
    (dict(optimizer="Adamm"), ValueError, "unknown optimizer 'Adamm'"),
    (dict(optimizer=nn.Linear), TypeError, "optimizer must be"),
    (dict(optimizer=42), TypeError, "optimizer must be"),
    (dict(metrics="acuracy"), ValueError, "did you mean 'accuracy'"),
    (dict(metrics=["accuracy", "accuracy"]), ValueError, "given twice"),
    (dict(metrics={"loss": "mae"}), ValueError, "reserved for the loss"),
    (dict(metrics=42), TypeError, "metrics must be a list"),
    (dict(callbacks=lk.EarlyStopping()), TypeError, "callbacks must be a list, got a single EarlyStopping"),
    (dict(callbacks=[lk.EarlyStopping]), TypeError, "write EarlyStopping() with parentheses"),
    (dict(callbacks="plot"), TypeError, "callbacks must be a list"),
    (dict(amp="yes"), ValueError, "amp must be"),
    (dict(amp=1.5), ValueError, "amp must be"),
    (dict(amp="fp16"), ValueError, "fp16' needs a GPU"),
    (dict(device=0), TypeError, "device must be a string"),
    (dict(device="gpu"), ValueError, "device='gpu' is not a known device"),
    (dict(guard="no"), TypeError, "guard must be True or False"),
])
def test_trainer_rejects_bad_options(kwargs, error, words):
    if kwargs.get("amp") == "fp16" and torch.cuda.is_available():
        pytest.skip("fp16 is fine on a GPU")
    with pytest.raises(error) as info:
        trainer(**kwargs)
    assert words in str(info.value)


def test_model_class_instead_of_instance():
    with pytest.raises(TypeError, match="write model=MLP"):
        lk.Trainer(lk.models.MLP, device="cpu")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        lk.Trainer("mlp", device="cpu")


def test_weight_decay_inf_message_blames_weight_decay_not_lr():
    with pytest.raises(ValueError) as info:
        trainer(weight_decay=math.inf)
    assert str(info.value).startswith("weight_decay") and "lr must" not in str(info.value)


def test_optimizer_instance_on_another_models_parameters_is_refused():
    other = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="not this model's.*model.parameters"):
        trainer(optimizer=torch.optim.SGD(other.parameters(), lr=0.1))


def test_weight_decay_is_applied_to_an_optimizer_instance():
    model = net()
    t = trainer(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), weight_decay=1e-3)
    assert all(g["weight_decay"] == 1e-3 for g in t.optimizer.param_groups)


def test_weight_decay_conflicting_with_the_instance_is_refused():
    model = net()
    with pytest.raises(ValueError, match="already has weight_decay=0.01; set it in one place"):
        trainer(model, optimizer=torch.optim.AdamW(model.parameters(), weight_decay=0.01), weight_decay=1e-3)


def test_weight_decay_on_an_optimizer_without_it_is_refused():
    with pytest.raises(ValueError, match="weight_decay=0.001 was given but Rprop has no weight_decay"):
        trainer(optimizer=torch.optim.Rprop, weight_decay=1e-3)


def test_lr_setter_rejects_nan_and_keeps_the_rate():
    t = trainer()
    with pytest.raises(ValueError, match="lr must be"):
        t.lr = math.nan
    assert t.lr == 1e-2 and t.optimizer.param_groups[0]["lr"] == 1e-2


def test_set_optimizer_typo_names_it():
    t = trainer()
    with pytest.raises(ValueError, match="unknown optimizer 'sdg'.*did you mean 'sgd'"):
        t.set_optimizer("sdg")
    assert isinstance(t.optimizer, torch.optim.Adam)


# ============================================================ fit / evaluate / predict arguments
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(epochs=1, steps=2), ValueError, "exactly one of epochs=N or steps=N"),
    (dict(steps=-1), ValueError, "steps must be an int >= 0"),
    (dict(steps=2.0), TypeError, "steps must be an int"),
    (dict(epochs="3"), TypeError, "epochs must be an int"),
    (dict(epochs=np.float64(2)), TypeError, "epochs must be an int"),
    (dict(steps=2, eval_every=0), ValueError, "eval_every must be an int >= 1"),
    (dict(steps=2, callbacks=lk.ProgressBar()), TypeError, "callbacks must be a list"),
])
def test_fit_rejects_bad_arguments(kwargs, error, words):
    t = trainer()
    with pytest.raises(error, match=words):
        t.fit(loader(), **kwargs)
    assert t.step == 0 and not t.is_fitting


def test_fit_accepts_numpy_ints():
    t = trainer()
    t.fit(loader(), steps=np.int64(3))
    assert t.step == 3


def test_fit_on_tensors_says_to_wrap_them():
    with pytest.raises(TypeError, match="DataLoader\\(TensorDataset"):
        trainer().fit(torch.zeros(4, 3), epochs=1)


def test_predict_accepts_numpy_and_lists():
    t = trainer(net(dropout=0.0))
    x = np.random.default_rng(0).normal(size=(5, 3))           # float64
    out = t.predict(x)
    assert out.shape == (5, 1) and out.dtype == torch.float32
    assert torch.equal(out, t.predict(torch.tensor(x, dtype=torch.float32)))
    assert t.predict(x.tolist()).shape == (5, 1)


def test_predict_on_a_loader_is_a_clear_type_error():
    with pytest.raises(TypeError, match="predict\\(\\) takes a torch.Tensor.*evaluate"):
        trainer().predict(loader())


def test_batches_that_are_not_pairs_are_explained():
    ds = TensorDataset(torch.randn(8, 3))
    with pytest.raises(TypeError, match="each batch must be an \\(inputs, targets\\) pair"):
        trainer().fit(DataLoader(ds, batch_size=4), epochs=1)


def test_evaluate_bundle_without_validation_split():
    data = lk.data.DataBundle(loader(), None, None, {})
    with pytest.raises(ValueError, match="without a validation split"):
        trainer().evaluate(data)


# ============================================================ callbacks' options
@pytest.mark.parametrize("make, error, words", [
    (lambda: lk.LRSchedule("exponential", gamma=-1), ValueError, "gamma must be a finite number > 0"),
    (lambda: lk.LRSchedule("exponential", gamma=0), ValueError, "gamma"),
    (lambda: lk.LRSchedule("step", gamma=math.nan), ValueError, "gamma"),
    (lambda: lk.LRSchedule("step", step_size=0), ValueError, "step_size must be an int >= 1"),
    (lambda: lk.LRSchedule("step", step_size=2.5), TypeError, "step_size must be an int"),
    (lambda: lk.LRSchedule("cosine", warmup=-1), ValueError, "warmup must be an int >= 0"),
    (lambda: lk.LRSchedule("cosine", warmup=1.5), TypeError, "warmup must be an int"),
    (lambda: lk.LRSchedule("cosine", min_lr=-1e-3), ValueError, "min_lr must be a finite number >= 0"),
    (lambda: lk.LRSchedule("linear", min_lr=math.inf), ValueError, "min_lr"),
    (lambda: lk.LRSchedule("onecycle", max_lr=0), ValueError, "max_lr must be"),
    (lambda: lk.LRSchedule("onecycle", pct_start=1.0), ValueError, "pct_start must be"),
    (lambda: lk.LRSchedule("cosine", gamma=0.5), TypeError, "takes ['min_lr', 'warmup'], got ['gamma']"),
    (lambda: lk.LRSchedule("cosine", interval="batch"), ValueError, "interval must be 'step' or 'epoch'"),
    (lambda: lk.LRSchedule(42), TypeError, "schedule must be one of"),
    (lambda: lk.LRSchedule("cosin"), ValueError, "did you mean 'cosine'"),
    (lambda: lk.EarlyStopping(min_delta=math.nan), ValueError, "min_delta must be a finite number >= 0"),
    (lambda: lk.EarlyStopping(min_delta=-0.1), ValueError, "min_delta"),
    (lambda: lk.EarlyStopping(min_delta="0.1"), TypeError, "min_delta"),
    (lambda: lk.EarlyStopping(patience=2.0), TypeError, "patience must be an int"),
    (lambda: lk.EarlyStopping(restore_best="yes"), TypeError, "restore_best must be True or False"),
    (lambda: lk.EarlyStopping(monitor=None), TypeError, "monitor must be a non-empty string"),
    (lambda: lk.DivergenceGuard(max_ratio=-1), ValueError, "max_ratio must be a finite number > 1"),
    (lambda: lk.DivergenceGuard(max_ratio=1), ValueError, "max_ratio"),
    (lambda: lk.DivergenceGuard(max_ratio=math.inf), ValueError, "max_ratio"),
    (lambda: lk.DivergenceGuard(snapshot_every=0), ValueError, "snapshot_every must be an int >= 1"),
    (lambda: lk.DivergenceGuard(snapshot_every=2.5), TypeError, "snapshot_every must be an int"),
    (lambda: lk.Checkpoint(None), TypeError, "dirpath must be a folder path"),
    (lambda: lk.Checkpoint("ck", save_last=False, save_best=False), ValueError, "would save nothing"),
    (lambda: lk.Checkpoint("ck", mode="down"), ValueError, "mode must be"),
    (lambda: lk.ProgressBar(every=0), ValueError, "every must be an int >= 1"),
])
def test_callbacks_reject_bad_options(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_min_lr_above_lr_is_refused_at_fit():
    t = trainer(lr=1e-3, callbacks=[lk.LRSchedule("cosine", min_lr=1e-2)])
    with pytest.raises(ValueError, match="min_lr=0.01 must be below the trainer's lr=0.001"):
        t.fit(loader(), steps=2)
    assert not t.is_fitting


def test_onecycle_on_a_one_step_fit_works():
    t = trainer(callbacks=[lk.LRSchedule("onecycle", max_lr=0.05)])
    t.fit(loader(), steps=1)
    assert t.step == 1


def test_a_warmup_longer_than_the_fit_warns():
    t = trainer(callbacks=[lk.LRSchedule("cosine", warmup=50)])
    with pytest.warns(RuntimeWarning, match="warm-up is longer than this fit's 5 steps"):
        t.fit(loader(), steps=5)


def test_a_loss_without_reduction_is_explained():
    t = trainer(loss=nn.MSELoss(reduction="none"))
    with pytest.raises(ValueError, match="one number per batch.*shape \\[8, 1\\].*reduction='mean'"):
        t.fit(loader(), steps=1)


def test_callbacks_read_planned_steps_from_logs():
    seen = {}

    class Spy(lk.Callback):
        def on_fit_start(self, trainer, logs):
            seen.update(logs)

    t = trainer(callbacks=[Spy()])
    t.fit(loader(), epochs=2)
    assert seen["planned_steps"] == 12 and seen["steps_per_epoch"] == 6


def test_every_callback_has_a_reset_hook():
    for cb in (lk.Callback(), lk.ProgressBar(), lk.EarlyStopping(), lk.LRSchedule(), lk.DivergenceGuard(),
               lk.Checkpoint("unused")):
        cb.reset()


# ============================================================ logs and the history
@pytest.mark.parametrize("value, expected", [
    (np.float32(0.5), 0.5), (np.int64(3), 3), (np.bool_(True), True), (torch.tensor(0.25), 0.25),
    (np.array(1.5), 1.5),
])
def test_numpy_and_tensor_scalars_become_plain_numbers(tmp_path, value, expected):
    class Score(lk.Callback):
        def on_epoch_end(self, trainer, logs):
            logs["score"] = value

    t = trainer(callbacks=[Score()])
    t.fit(loader(), epochs=1)
    got = t.history.epochs[-1]["score"]
    assert got == expected and type(got) in (float, int, bool)
    t.save_checkpoint(tmp_path / "c.pt")
    fresh = trainer(callbacks=[Score()])
    fresh.load_checkpoint(tmp_path / "c.pt")                # weights_only loading accepts it
    assert fresh.history.epochs[-1]["score"] == expected


def test_a_log_that_is_not_a_number_is_refused_naming_the_key():
    class Bad(lk.Callback):
        def on_batch_end(self, trainer, logs):
            logs["note"] = "hello"

    t = trainer(callbacks=[Bad()])
    with pytest.raises(TypeError, match="logs\\['note'\\].*plain numbers"):
        t.fit(loader(), steps=2)
    assert all("note" not in r for r in t.history.steps) and not t.is_fitting


def test_a_vector_tensor_log_is_refused():
    class Bad(lk.Callback):
        def on_epoch_end(self, trainer, logs):
            logs["vec"] = torch.ones(3)

    with pytest.raises(TypeError, match="logs\\['vec'\\]"):
        trainer(callbacks=[Bad()]).fit(loader(), epochs=1)


# ============================================================ degenerate data
def test_empty_dataset_is_refused_at_fit():
    empty = DataLoader(TensorDataset(torch.zeros(0, 3), torch.zeros(0, 1)), batch_size=4)
    with pytest.raises(ValueError, match="training loader has no batch: its dataset has 0 samples"):
        trainer().fit(empty, steps=5)


def test_drop_last_larger_than_the_data_is_refused():
    tiny = loader(n=5, batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="batch_size=8, drop_last=True"):
        trainer().fit(tiny, epochs=2)


def test_empty_validation_split_is_refused_before_training():
    data = lk.data.DataBundle(loader(), DataLoader(TensorDataset(torch.zeros(0, 3), torch.zeros(0, 1))),
                              None, {})
    t = trainer()
    with pytest.raises(ValueError, match="validation loader has no batch"):
        t.fit(data, epochs=1)
    assert t.step == 0


def test_evaluate_on_an_empty_loader_raises():
    empty = DataLoader(TensorDataset(torch.zeros(0, 3), torch.zeros(0, 1)), batch_size=4)
    with pytest.raises(ValueError, match="evaluation loader has no batch"):
        trainer().evaluate(empty)


class _Liar(IterableDataset):
    """Claims a length but yields nothing."""

    def __len__(self):
        return 4

    def __iter__(self):
        return iter(())


def test_fit_steps_on_a_loader_that_yields_nothing_raises_instead_of_spinning():
    t = trainer()
    with pytest.raises(RuntimeError, match="yielded no batch in epoch 0"):
        t.fit(DataLoader(_Liar(), batch_size=None), steps=10)
    assert not t.is_fitting


class _NoLen(IterableDataset):
    def __iter__(self):
        yield torch.zeros(3), torch.zeros(1)


def test_iterable_dataset_without_length_is_explained():
    with pytest.raises(TypeError, match="has no length.*__len__"):
        trainer().fit(DataLoader(_NoLen(), batch_size=1), steps=1)


def test_early_stopping_when_the_monitor_is_never_finite_ends_with_a_message():
    class NanVal(lk.Callback):
        def on_epoch_end(self, trainer, logs):
            pass

    class Nan(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            out = self.lin(x)
            return out if self.training else out * math.nan     # validation loss NaN, training fine

    t = trainer(Nan(), callbacks=[lk.EarlyStopping(patience=1)])
    t.fit(bundle(), epochs=10)
    assert t.epoch == 2 and "was never a finite number" in t.stop_reason


def test_a_nan_in_the_data_stops_with_the_divergence_message():
    x = torch.randn(16, 3)
    x[5, 1] = math.nan
    data = DataLoader(TensorDataset(x, torch.zeros(16, 1)), batch_size=4)
    t = trainer()
    with pytest.warns(lk.DivergenceWarning, match="NaN/inf"):
        t.fit(data, epochs=3)
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


# ============================================================ exact continuation
def test_two_short_fits_equal_one_long_fit_bit_for_bit():
    torch.manual_seed(5)
    a, la = trainer(), loader()
    a.fit(la, steps=4)
    a.fit(la, steps=4)
    torch.manual_seed(5)
    b = trainer()
    b.fit(loader(), steps=8)
    assert losses(a) == losses(b) and same_weights(weights(a), weights(b))


def test_fit_steps_then_epochs_ends_at_the_epoch_boundary():
    t = trainer()
    data = loader()                       # 6 batches an epoch
    t.fit(data, steps=4)
    t.fit(data, epochs=1)                 # the rest of epoch 0 counts as the first epoch
    assert (t.step, t.epoch) == (6, 1)
    t.fit(data, epochs=2)
    assert (t.step, t.epoch) == (18, 3)


def test_continuation_is_exact_with_gradient_accumulation():
    torch.manual_seed(1)
    a, la = trainer(accumulate=2), loader(n=56)                 # 7 batches: steps of 2, 2, 2, 1
    for _ in range(5):
        a.fit(la, steps=1)
    torch.manual_seed(1)
    b = trainer(accumulate=2)
    b.fit(loader(n=56), steps=5)
    assert losses(a) == losses(b) and same_weights(weights(a), weights(b))


def test_evaluation_does_not_change_the_course_of_training():
    torch.manual_seed(2)
    a = trainer()
    a.fit(bundle(), steps=12, eval_every=2)                     # evaluates 6 times
    torch.manual_seed(2)
    b = trainer()
    b.fit(bundle().train, steps=12)
    assert losses(a) == losses(b)


@pytest.mark.parametrize("schedule", [None, "cosine", "step"])
def test_stop_mid_epoch_checkpoint_resume_equals_the_uninterrupted_run(tmp_path, schedule):
    def make():
        return trainer(callbacks=[lk.LRSchedule(schedule, warmup=2) if schedule == "cosine" else
                                  lk.LRSchedule(schedule, step_size=1, gamma=0.5)] if schedule else [])

    torch.manual_seed(3)
    straight = make()
    straight.fit(loader(), epochs=3)

    class StopAt(lk.Callback):
        def on_batch_end(self, trainer, logs):
            if logs["step"] == 9:
                trainer.stop("test")

    torch.manual_seed(3)
    first = make()
    first.fit(loader(), epochs=3, callbacks=[StopAt()])
    first.save_checkpoint(tmp_path / "mid.pt")
    assert (first.step, first.epoch) == (9, 1)

    torch.manual_seed(123)
    np.random.rand(3)
    resumed = make()
    resumed.load_checkpoint(tmp_path / "mid.pt")
    resumed.fit(loader(), epochs=3 - resumed.epoch)              # a new loader object
    assert resumed.step == straight.step == 18
    assert losses(resumed) == losses(straight)
    assert same_weights(weights(resumed), weights(straight))


def test_ctrl_c_then_fit_again_continues_exactly():
    class Interrupt(lk.Callback):
        def on_batch_end(self, trainer, logs):
            if logs["step"] == 4:
                os.kill(os.getpid(), signal.SIGINT)

    torch.manual_seed(4)
    a, la = trainer(), loader()
    a.fit(la, epochs=2, callbacks=[Interrupt()])
    assert a.stop_reason == "interrupted"
    a.fit(la, steps=12 - a.step)
    torch.manual_seed(4)
    b = trainer()
    b.fit(loader(), epochs=2)
    assert losses(a) == losses(b) and same_weights(weights(a), weights(b))


def test_an_exception_inside_fit_releases_the_trainer():
    class Boom(lk.Callback):
        def on_batch_end(self, trainer, logs):
            if logs["step"] == 2:
                raise KeyError("callback bug")

    t = trainer()
    with pytest.raises(KeyError, match="callback bug"):
        t.fit(loader(), epochs=1, callbacks=[Boom()])
    assert not t.is_fitting
    t.fit(loader(), steps=2)
    assert t.step == 4


def test_a_refused_fit_call_leaves_the_epoch_in_progress_alone():
    torch.manual_seed(8)
    a, la = trainer(), loader()
    a.fit(la, steps=2)
    with pytest.raises(TypeError, match="epochs must be an int"):
        a.fit(la, epochs="1")
    with pytest.raises(ValueError, match="eval_every"):
        a.fit(la, steps=1, eval_every=-2)
    a.fit(la, steps=2)
    torch.manual_seed(8)
    b = trainer()
    b.fit(loader(), steps=4)
    assert losses(a) == losses(b)


def test_a_keyboard_interrupt_that_aborts_releases_the_trainer():
    class Abort(lk.Callback):
        def on_batch_end(self, trainer, logs):
            raise KeyboardInterrupt

    t = trainer()
    with pytest.raises(KeyboardInterrupt):
        t.fit(loader(), epochs=1, callbacks=[Abort()])
    assert not t.is_fitting and t.step == 1
    t.fit(loader(), epochs=1)                     # the rest of epoch 0
    assert (t.step, t.epoch) == (6, 1)


def test_fit_epochs_zero_changes_nothing():
    t = trainer()
    t.fit(loader(), steps=2)
    t.fit(loader(), epochs=0)
    assert (t.step, t.epoch) == (2, 0)


def test_a_resumed_schedule_that_had_finished_restarts_with_a_warning(tmp_path):
    t = trainer(callbacks=[lk.LRSchedule("cosine"), lk.Checkpoint(tmp_path, monitor="loss", save_best=False)])
    t.fit(loader(), epochs=2)                     # last.pt written at the final epoch's end
    again = trainer(callbacks=[lk.LRSchedule("cosine"), lk.Checkpoint(tmp_path, monitor="loss",
                                                                      save_best=False)])
    again.load_checkpoint(tmp_path / "last.pt")
    with pytest.warns(RuntimeWarning, match="had finished.*restarting it afresh"):
        again.fit(loader(), epochs=1)
    new_lrs = [r["lr"] for r in again.history.steps[12:]]
    assert new_lrs[0] == pytest.approx(1e-2) and min(new_lrs[:-1]) > 0     # cosine ends at min_lr=0


def test_resuming_on_a_loader_of_another_length_warns_and_restarts_the_epoch(tmp_path):
    t = trainer()
    t.fit(loader(), steps=3)
    t.save_checkpoint(tmp_path / "c.pt")
    fresh = trainer()
    fresh.load_checkpoint(tmp_path / "c.pt")
    with pytest.warns(RuntimeWarning, match="after batch 3 of 6 in epoch 0.*12 batches"):
        fresh.fit(loader(batch_size=4), epochs=1)
    assert fresh.epoch == 1 and fresh.step == 3 + 12


# ============================================================ checkpoints: validate, then apply
def _assert_unchanged(t, before, step):
    assert same_weights(weights(t), before) and t.step == step


def test_checkpoint_of_another_optimizer_is_refused_and_nothing_changes(tmp_path):
    src = trainer(optimizer="adam")
    src.fit(loader(), steps=3)
    src.save_checkpoint(tmp_path / "adam.pt")
    dst = trainer(optimizer="momentum")
    before = weights(dst)
    with pytest.raises(ValueError, match="saved with optimizer Adam but this trainer uses SGD"):
        dst.load_checkpoint(tmp_path / "adam.pt")
    _assert_unchanged(dst, before, 0)
    dst.fit(loader(), steps=2)                                   # still trains


def test_checkpoint_with_other_optimizer_options_is_refused(tmp_path):
    src = trainer(optimizer="sgd")
    src.save_checkpoint(tmp_path / "sgd.pt")
    dst = trainer(optimizer="momentum")
    with pytest.raises(ValueError, match="other SGD options in group 0: momentum=0"):
        dst.load_checkpoint(tmp_path / "sgd.pt")


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    trainer(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.0), nn.Linear(4, 1))).save_checkpoint(
        tmp_path / "small.pt")
    dst = trainer()
    before = weights(dst)
    with pytest.raises(ValueError, match=r"different model.*0.weight: \(4, 3\) vs \(8, 3\)"):
        dst.load_checkpoint(tmp_path / "small.pt")
    _assert_unchanged(dst, before, 0)


def test_checkpoint_with_other_callbacks_is_refused(tmp_path):
    src = trainer(callbacks=[lk.LRSchedule("cosine")])
    src.fit(loader(), steps=2)
    src.save_checkpoint(tmp_path / "c.pt")
    dst = trainer(callbacks=[lk.EarlyStopping(monitor="loss")])
    with pytest.raises(ValueError, match="callbacks \\['LRSchedule#0'\\].*\\['EarlyStopping#0'\\]"):
        dst.load_checkpoint(tmp_path / "c.pt")
    assert dst.step == 0


def test_callback_keys_survive_an_added_stateless_callback(tmp_path):
    src = trainer(callbacks=[lk.EarlyStopping(monitor="loss")])
    src.fit(loader(), epochs=2)
    src.save_checkpoint(tmp_path / "c.pt")
    dst = trainer(callbacks=[lk.ProgressBar(), lk.EarlyStopping(monitor="loss")])
    dst.load_checkpoint(tmp_path / "c.pt")
    assert dst.callbacks[1].best == src.callbacks[0].best


def test_truncated_checkpoint_is_refused(tmp_path):
    t = trainer()
    path = t.save_checkpoint(tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable labkit checkpoint"):
        t.load_checkpoint(path)


def test_checkpoint_of_an_older_format_is_named(tmp_path):
    t = trainer()
    state = t.state_dict()
    state["format"] = "labkit-checkpoint-1"
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="older labkit"):
        t.load_checkpoint(tmp_path / "old.pt")


def test_checkpoint_missing_parts_is_refused(tmp_path):
    t = trainer()
    state = t.state_dict()
    del state["optimizer"]
    torch.save(state, tmp_path / "part.pt")
    with pytest.raises(ValueError, match="lacks \\['optimizer'\\]"):
        t.load_checkpoint(tmp_path / "part.pt")


def test_early_stopping_best_weights_survive_a_resume(tmp_path):
    es = lk.EarlyStopping(monitor="val_loss", patience=50)
    t = trainer(callbacks=[es])
    t.fit(bundle(), epochs=2)
    t.save_checkpoint(tmp_path / "c.pt")
    es2 = lk.EarlyStopping(monitor="val_loss", patience=50)
    t2 = trainer(callbacks=[es2])
    t2.load_checkpoint(tmp_path / "c.pt")
    assert es2.best == es.best and same_weights(es2.best_state, es.best_state)


def test_state_dict_round_trip_in_memory_changes_nothing():
    t = trainer()
    t.fit(loader(), steps=3)
    import copy
    snap = copy.deepcopy(t.state_dict())
    t.fit(loader(), steps=3)
    t.load_state_dict(snap)
    assert t.step == 3 and len(t.history.steps) == 3


# ============================================================ concurrency: one fit at a time
class _Gate(lk.Callback):
    """Holds the fit at its first step until released."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()

    def on_batch_end(self, trainer, logs):
        self.started.set()
        self.release.wait(10)


def _fit_in_thread(t, gate, **kw):
    errors = []

    def run():
        try:
            t.fit(loader(), callbacks=[gate], **kw)
        except BaseException as e:        # pragma: no cover - reported by the assertion below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    assert gate.started.wait(10)
    return thread, errors


def test_a_second_fit_while_one_runs_is_refused_and_the_first_is_unharmed():
    t, gate = trainer(), _Gate()
    thread, errors = _fit_in_thread(t, gate, epochs=3)
    try:
        assert t.is_fitting
        with pytest.raises(RuntimeError, match="already running fit\\(epochs=3\\) started at step 0.*stop"):
            t.fit(loader(), steps=2)
    finally:
        gate.release.set()
        thread.join(20)
    assert not errors and not t.is_fitting
    assert t.step == 18 and t.epoch == 3 and len(t.history.steps) == 18


@pytest.mark.parametrize("action", ["reset", "set_model", "load_checkpoint", "set_optimizer",
                                    "lr_find", "evaluate", "predict", "load_state_dict"])
def test_state_changes_during_a_fit_are_refused(tmp_path, action):
    t, gate = trainer(), _Gate()
    t.save_checkpoint(tmp_path / "c.pt")
    state = t.state_dict()
    thread, errors = _fit_in_thread(t, gate, steps=3)
    try:
        calls = {"reset": t.reset, "set_model": lambda: t.set_model(net()),
                 "load_checkpoint": lambda: t.load_checkpoint(tmp_path / "c.pt"),
                 "set_optimizer": lambda: t.set_optimizer("sgd"),
                 "lr_find": lambda: lr_find(t, loader(), num_steps=5),
                 "evaluate": lambda: t.evaluate(loader()), "predict": lambda: t.predict(torch.zeros(2, 3)),
                 "load_state_dict": lambda: t.load_state_dict(state)}
        with pytest.raises(RuntimeError, match="running fit\\(steps=3\\)"):
            calls[action]()
    finally:
        gate.release.set()
        thread.join(20)
    assert not errors and t.step == 3


def test_a_callback_starting_a_fit_inside_a_fit_is_refused():
    class Nested(lk.Callback):
        def on_batch_end(self, trainer, logs):
            trainer.fit(loader(), steps=1)

    t = trainer()
    with pytest.raises(RuntimeError, match="already running fit\\(steps=2\\)"):
        t.fit(loader(), steps=2, callbacks=[Nested()])
    assert not t.is_fitting


def test_evaluate_from_a_callback_of_the_running_fit_is_allowed():
    scores = []

    class Eval(lk.Callback):
        def on_epoch_end(self, trainer, logs):
            scores.append(trainer.evaluate(loader(shuffle=False)))

    trainer(callbacks=[Eval()]).fit(loader(), epochs=1)
    assert len(scores) == 1 and math.isfinite(scores[0]["loss"])


def test_stop_from_another_thread_before_and_after_a_fit_is_harmless():
    t = trainer()
    t.stop("early")                   # no fit yet: the next fit starts clean
    t.fit(loader(), steps=2)
    assert t.step == 2 and t.stop_reason is None
    t.stop("late")
    assert not t.is_fitting


# ============================================================ reset and set_model
def test_reset_forgets_early_stopping_and_restores_nothing_old():
    es = lk.EarlyStopping(monitor="val_loss", patience=0)
    t = trainer(lr=0.5, optimizer="sgd", callbacks=[es])
    t.fit(bundle(), epochs=6)
    assert es.best is not None
    t.reset()
    assert es.best is None and es.best_state is None and es.wait == 0
    t.lr = 1e-3                              # a slow, steadily improving run
    t.fit(bundle(), epochs=3)
    assert t.epoch == 3 and t.stop_reason is None


def test_reset_gives_a_fresh_adam_without_old_moments():
    t = trainer(optimizer="adam")
    t.fit(loader(), steps=3)
    assert t.optimizer.state
    t.reset()
    assert not t.optimizer.state and isinstance(t.optimizer, torch.optim.Adam)
    fresh = trainer(optimizer="adam")
    torch.manual_seed(9)
    t.fit(loader(), steps=3)
    torch.manual_seed(9)
    fresh.fit(loader(), steps=3)
    assert losses(t) == losses(fresh)


def test_reset_rebuilds_an_optimizer_instance_with_its_options():
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.8, nesterov=True)
    t = trainer(model, optimizer=opt)
    t.fit(loader(), steps=3)
    t.reset()
    assert t.optimizer is not opt and not t.optimizer.state
    g = t.optimizer.param_groups[0]
    assert (g["lr"], g["momentum"], g["nesterov"]) == (0.05, 0.8, True)


def test_set_model_with_an_optimizer_instance_trains_the_new_model():
    model = net()
    t = trainer(model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.9)))
    t.fit(loader(), steps=2)
    new = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    before = {k: v.clone() for k, v in new.state_dict().items()}
    t.set_model(new)
    assert t.optimizer.param_groups[0]["betas"] == (0.8, 0.9)
    assert {id(p) for p in t.optimizer.param_groups[0]["params"]} == {id(p) for p in new.parameters()}
    t.fit(loader(), steps=3)
    assert any(not torch.equal(before[k], v) for k, v in new.state_dict().items())


def test_set_model_with_another_architecture_and_early_stopping_does_not_load_old_weights():
    t = trainer(callbacks=[lk.EarlyStopping(monitor="val_loss", patience=1)])
    t.fit(bundle(), epochs=3)
    t.set_model(nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 1)))
    t.fit(bundle(), epochs=2)                        # no crash loading the old best weights
    assert t.model[0].weight.shape == (5, 3)


def test_set_model_resets_the_schedule_and_the_divergence_guard():
    sched = lk.LRSchedule("cosine")
    t = trainer(callbacks=[sched])
    t.fit(loader(), steps=4)
    t.set_model(net(1))
    assert sched.scheduler is None and t.step == 0 and not t.history.steps
    guard = next(c for c in t.callbacks if isinstance(c, lk.DivergenceGuard))
    assert guard.first_loss is None and guard.snapshot is None


def test_set_model_with_several_parameter_groups_warns():
    model = net()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1e-3},
                           {"params": model[3].parameters(), "lr": 1e-2}])
    t = trainer(model, optimizer=opt)
    t.reset()                                        # same model: both groups kept
    assert [g["lr"] for g in t.optimizer.param_groups] == [1e-3, 1e-2]
    with pytest.warns(UserWarning, match="2 parameter groups; the new model gets one group"):
        t.set_model(net(1))


def test_set_model_refuses_a_non_module():
    t = trainer()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        t.set_model({"weights": 1})
    with pytest.raises(TypeError, match="write model=Linear"):
        t.set_model(nn.Linear)


# ============================================================ lr_find
def test_lr_find_mid_epoch_does_not_change_the_continuation():
    torch.manual_seed(6)
    a, la = trainer(), loader()
    a.fit(la, steps=3)
    lr_find(a, la, num_steps=8)
    a.fit(la, steps=5)
    torch.manual_seed(6)
    b = trainer()
    b.fit(loader(), steps=8)
    assert losses(a) == losses(b) and same_weights(weights(a), weights(b))


def test_lr_find_keeps_callback_state_and_the_lr_for_reset():
    sched = lk.LRSchedule("cosine")
    t = trainer(callbacks=[sched])
    t.fit(loader(), steps=4)
    state = sched.state_dict()
    lr_find(t, loader(), num_steps=6)
    assert sched.state_dict() == state and t.lr == 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # the next fit starts its schedule as usual
        t.fit(loader(), steps=2)
    assert t.history.steps[-2]["lr"] == pytest.approx(1e-2)
    t.reset()
    assert t.optimizer.param_groups[0]["lr"] == 1e-2


def test_lr_find_on_an_empty_loader():
    empty = DataLoader(TensorDataset(torch.zeros(0, 3), torch.zeros(0, 1)), batch_size=4)
    with pytest.raises(ValueError, match="training loader of data has no batch"):
        lr_find(trainer(), empty)


def test_lr_find_accepts_numpy_numbers():
    result = lr_find(trainer(), loader(), start_lr=np.float64(1e-5), end_lr=np.float32(1.0),
                     num_steps=np.int64(6))
    assert len(result.lrs) <= 6


def test_lr_find_leaves_the_model_mode():
    t = trainer()
    t.model.eval()
    lr_find(t, loader(), num_steps=4)
    assert not t.model.training


# ============================================================ models' arguments
@pytest.mark.parametrize("make, error, words", [
    (lambda: lk.models.MLP(3, [8], 1, dropout=math.nan), ValueError, "dropout"),
    (lambda: lk.models.MLP(3, [8], 1, dropout=-0.1), ValueError, "dropout"),
    (lambda: lk.models.MLP(3, [8], 1, activation="Relu"), ValueError, "did you mean 'relu'"),
    (lambda: lk.models.CNN(channels=16), TypeError, "channels must be a non-empty list"),
    (lambda: lk.models.CNN(dropout=1.0), ValueError, "dropout"),
    (lambda: lk.models.SequenceModel(1, 8, 1, cell="transformer"), ValueError, "cell='transformer'"),
    (lambda: lk.models.GPT(11, n_embd=10, n_head=4), ValueError, "divisible by n_head"),
    (lambda: lk.models.GPT(11, dropout=math.inf), ValueError, "dropout"),
    (lambda: lk.models.LoRALinear(nn.Linear(3, 3), alpha=math.nan), ValueError, "alpha"),
    (lambda: lk.models.LoRALinear(nn.Linear(3, 3), alpha=math.inf), ValueError, "alpha"),
    (lambda: lk.models.CharLSTM(0), ValueError, "vocab_size"),
])
def test_models_reject_bad_arguments(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_generate_rejects_a_nan_temperature():
    model = lk.models.GPT(11, n_layer=1, n_head=2, n_embd=8, block_size=8)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 3, temperature=math.nan)


# ============================================================ devices, seeds and the distributed launch
def test_seed_must_be_a_non_negative_int():
    with pytest.raises(TypeError, match="seed must be an int"):
        lk.seed_everything(1.5)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        lk.seed_everything(-1)


STRAY = "import labkit as lk, torch; lk.Trainer(torch.nn.Linear(2, 1), device='cpu')"
DIST_VARS = ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK")


def test_a_stray_world_size_fails_within_seconds_in_a_fresh_process():
    clean = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    proc = subprocess.run([sys.executable, "-c", STRAY], env={**clean, "WORLD_SIZE": "2"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "RANK, MASTER_ADDR, MASTER_PORT are not" in proc.stderr and "torchrun" in proc.stderr


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "3", "RANK": "0"}, "MASTER_ADDR, MASTER_PORT are not"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}, "MASTER_PORT is not"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an int"),
    ({"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK='5' must be"),
])
def test_a_stray_world_size_says_what_is_missing(monkeypatch, env, words):
    for name in DIST_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((RuntimeError, ValueError)) as info:
        lk.Trainer(nn.Linear(2, 1), device="cpu")
    assert words in str(info.value)
