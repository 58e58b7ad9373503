"""The learning-rate range test: restores the trainer, suggests a sane rate, validates its arguments."""
import math

import pytest
import torch
from torch import nn

import labkit as lk
from labkit.lr_find import LRFinderResult, lr_find


def regression_setup(optimizer="sgd", seed=0, **trainer_kwargs):
    """A linear model on standardized 1-D data: plain SGD on it is stable for lr below about 1."""
    lk.seed_everything(seed)
    data = lk.data.synthetic_regression(n=400, n_features=1, noise=0.1, standardize=True, batch_size=32,
                                        seed=seed)
    trainer = lk.Trainer(lk.models.MLP(1, [], 1), loss="mse", optimizer=optimizer, lr=1e-2,
                         device="cpu", **trainer_kwargs)
    return trainer, data


def classifier_setup(seed=0, **trainer_kwargs):
    lk.seed_everything(seed)
    data = lk.data.synthetic_classification("moons", n=300, batch_size=32, seed=seed)
    model = lk.models.MLP(2, [16], 2, dropout=0.2)         # dropout: lr_find must not shift its RNG
    trainer = lk.Trainer(model, loss="cross_entropy", optimizer="adam", lr=1e-2, metrics=["accuracy"],
                         device="cpu", **trainer_kwargs)
    return trainer, data


def state_of(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_restores_weights_optimizer_lr_counters_and_history():
    trainer, data = classifier_setup()
    trainer.fit(data, epochs=2)                     # optimizer state (Adam moments) and history exist
    trainer.lr = 3e-3
    weights, opt_state = state_of(trainer), trainer.optimizer.state_dict()
    moments = {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()}
               for k, s in opt_state["state"].items()}
    steps, epochs, n_rows = trainer.step, trainer.epoch, (len(trainer.history.steps), len(trainer.history.epochs))
    loader_rng, torch_rng = data.train.generator.get_state(), torch.get_rng_state()

    result = lr_find(trainer, data, num_steps=40)

    assert len(result.lrs) > 10                     # it really trained (and moved the weights meanwhile)
    for k, v in state_of(trainer).items():
        assert torch.equal(v, weights[k]), f"weight {k} changed"
    after = trainer.optimizer.state_dict()
    assert after["state"].keys() == moments.keys()
    for k, s in moments.items():
        for n, t in s.items():
            assert torch.equal(torch.as_tensor(after["state"][k][n]), torch.as_tensor(t)), f"optimizer {k}.{n}"
    assert trainer.lr == 3e-3 and all(g["lr"] == 3e-3 for g in trainer.optimizer.param_groups)
    assert (trainer.step, trainer.epoch) == (steps, epochs)
    assert (len(trainer.history.steps), len(trainer.history.epochs)) == n_rows
    assert torch.equal(data.train.generator.get_state(), loader_rng)
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert trainer.model.training


def test_a_fit_after_lr_find_is_the_fit_without_it():
    a, data_a = classifier_setup()                  # seeds everything, then builds
    lr_find(a, data_a, num_steps=30)
    a.fit(data_a, epochs=2)                         # dropout and the loader draw from the RNGs
    b, data_b = classifier_setup()
    b.fit(data_b, epochs=2)
    for k, v in state_of(a).items():
        assert torch.equal(v, state_of(b)[k])
    assert [r["loss"] for r in a.history.steps] == [r["loss"] for r in b.history.steps]


def test_suggestion_is_a_good_rate_for_linear_regression():
    trainer, data = regression_setup()
    result = lr_find(trainer, data, start_lr=1e-5, end_lr=100.0, num_steps=80)
    assert isinstance(result, LRFinderResult)
    # plain SGD on this problem diverges above lr ~ 1: the test must see that and stop early
    assert result.stop_reason is not None and result.lrs[-1] < 100.0
    assert 1e-2 <= result.suggestion <= 1.0
    assert 1e-3 <= result.min_loss_lr <= 1.0
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses)
    assert all(a < b for a, b in zip(result.lrs, result.lrs[1:]))
    assert result.lrs[0] == pytest.approx(1e-5)
    # the suggested rate trains well from the same start
    before = trainer.evaluate(data.val)["loss"]
    trainer.lr = result.suggestion
    trainer.fit(data, epochs=3)
    assert trainer.evaluate(data.val)["loss"] < 0.05 * before


def test_exponential_schedule_and_smoothing():
    trainer, data = regression_setup()
    result = lr_find(trainer, data, start_lr=1e-6, end_lr=1e-2, num_steps=5, smooth=1.0)
    assert result.stop_reason is None and len(result.lrs) == 5
    assert result.lrs == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
    assert result.losses == result.raw_losses            # smooth=1: no averaging
    smoothed = lr_find(trainer, data, start_lr=1e-6, end_lr=1e-2, num_steps=5, smooth=0.5)
    assert smoothed.losses[0] == pytest.approx(smoothed.raw_losses[0])   # bias-corrected start
    assert smoothed.losses[1] == pytest.approx((0.5 * smoothed.raw_losses[0] + smoothed.raw_losses[1]) / 1.5)


def test_stops_on_nan_and_with_gradient_accumulation():
    trainer, data = regression_setup(accumulate=2)
    result = lr_find(trainer, data, start_lr=1e-3, end_lr=1e12, num_steps=60)
    assert result.stop_reason is not None
    assert len(result.lrs) < 60
    assert trainer.step == 0 and trainer.history.steps == []


def test_restores_the_trainer_when_the_model_fails_midway():
    class Breaks(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.calls = nn.Linear(1, 1), 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 5:
                raise RuntimeError("boom")
            return self.linear(x)

    lk.seed_everything(0)
    data = lk.data.synthetic_regression(n=200, batch_size=16)
    trainer = lk.Trainer(Breaks(), loss="mse", optimizer="sgd", lr=0.01, device="cpu")
    weights = state_of(trainer)
    with pytest.raises(RuntimeError, match="boom"):
        lr_find(trainer, data)
    assert all(torch.equal(v, weights[k]) for k, v in state_of(trainer).items())
    assert trainer.step == 0 and trainer.lr == 0.01


def test_figure_is_log_x_with_the_suggestion_marked():
    trainer, data = regression_setup()
    result = lr_find(trainer, data, start_lr=1e-5, end_lr=100.0, num_steps=60)
    fig = result.figure()
    assert fig.layout.xaxis.type == "log"
    names = [t.name for t in fig.data]
    assert any(n.startswith("steepest descent") for n in names)
    marker = next(t for t in fig.data if t.name.startswith("steepest descent"))
    assert marker.x[0] == pytest.approx(result.suggestion)
    assert "suggestion=" in repr(result)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(start_lr=1.0, end_lr=1e-3), ValueError, "start_lr must be smaller than end_lr"),
    (dict(start_lr=0.1, end_lr=0.1), ValueError, "start_lr must be smaller"),
    (dict(start_lr=-1.0), ValueError, "start_lr"),
    (dict(end_lr=math.inf), ValueError, "end_lr"),
    (dict(start_lr="small"), TypeError, "start_lr"),
    (dict(num_steps=1), ValueError, "num_steps must be an int >= 2"),
    (dict(num_steps=10.0), TypeError, "num_steps"),
    (dict(smooth=0.0), ValueError, "smooth must be a finite number in (0, 1]"),
    (dict(smooth=1.5), ValueError, "smooth"),
    (dict(diverge_factor=1.0), ValueError, "diverge_factor must be a finite number > 1"),
    (dict(diverge_factor=math.nan), ValueError, "diverge_factor"),
    (dict(diverge_factor=True), TypeError, "diverge_factor"),
])
def test_bad_arguments_are_named(kwargs, error, words):
    trainer, data = regression_setup()
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        lr_find(trainer, data, **kwargs)
    assert trainer.step == 0


def test_bad_trainer_or_data():
    trainer, data = regression_setup()
    with pytest.raises(TypeError, match="trainer must be a labkit Trainer"):
        lr_find(trainer.model, data)
    with pytest.raises(TypeError, match="data must be a labkit DataBundle or a torch DataLoader"):
        lr_find(trainer, [(torch.zeros(2, 1), torch.zeros(2, 1))])
    result = lr_find(trainer, data.train, num_steps=10)   # a bare DataLoader is fine
    assert len(result.lrs) == 10


def test_no_finite_loss_at_all_is_a_clear_error():
    class AlwaysNaN(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(1, 1)

        def forward(self, x):
            return self.linear(x) * math.nan

    lk.seed_everything(0)
    data = lk.data.synthetic_regression(n=100, batch_size=16)
    trainer = lk.Trainer(AlwaysNaN(), loss="mse", optimizer="sgd", lr=0.01, device="cpu")
    with pytest.raises(ValueError, match="recorded 0 finite loss"):
        lr_find(trainer, data)
    assert trainer.step == 0 and trainer.lr == 0.01
