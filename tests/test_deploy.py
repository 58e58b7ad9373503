"""labkit.deploy: model size, latency, sparsity, magnitude pruning and knowledge distillation."""
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit as lk
from labkit import deploy


def small_gpt():
    torch.manual_seed(0)
    return lk.models.GPT(20, n_layer=1, n_head=2, n_embd=16, block_size=8)


# -- size ---------------------------------------------------------------------------------------
def test_model_size_mb_counts_the_saved_weights(tmp_path):
    model = nn.Linear(100, 100)                        # 10,100 float32 numbers = 40,400 bytes
    size = deploy.model_size_mb(model)
    assert 0.0404 < size < 0.0404 + 0.002              # plus a little zip/pickle overhead
    assert deploy.model_size_mb(nn.Linear(200, 100)) > 1.9 * size
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    assert deploy.model_size_mb(path) == pytest.approx(path.stat().st_size / 1e6)
    assert deploy.model_size_mb(str(path)) == deploy.model_size_mb(path)


def test_model_size_mb_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="nn.Module or a file path"):
        deploy.model_size_mb(torch.zeros(3))
    with pytest.raises(FileNotFoundError, match="no file"):
        deploy.model_size_mb(tmp_path / "missing.onnx")


# -- latency ------------------------------------------------------------------------------------
def test_measure_latency_times_every_repeat_after_warmup():
    calls = []

    def slow(x):
        calls.append(x)
        time.sleep(0.002)

    result = deploy.measure_latency(slow, 7, repeats=5, warmup=2)
    assert len(calls) == 7 and calls[0] == 7
    assert set(result) == {"median_ms", "mean_ms", "min_ms", "max_ms", "repeats"}
    assert result["repeats"] == 5
    assert 2.0 <= result["min_ms"] <= result["median_ms"] <= result["max_ms"]


def test_measure_latency_runs_without_autograd():
    seen = []
    model = nn.Linear(3, 2)
    model.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    deploy.measure_latency(model, torch.randn(4, 3), repeats=2, warmup=0)
    assert seen == [False, False]


@pytest.mark.parametrize("kwargs, error", [(dict(repeats=0), ValueError), (dict(warmup=-1), ValueError),
                                           (dict(repeats=2.5), TypeError)])
def test_measure_latency_checks_its_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        deploy.measure_latency(lambda: None, **kwargs)
    with pytest.raises(TypeError, match="callable"):
        deploy.measure_latency("model")


def test_latency_table_has_one_row_per_runtime_and_batch_size():
    sizes_seen = []

    def make_input(b):
        sizes_seen.append(b)
        return torch.randn(b, 4)

    model = nn.Linear(4, 2)
    rows = deploy.latency_table({"a": model, "b": lambda x: x.sum()}, make_input, [1, 16], repeats=2, warmup=0)
    assert sizes_seen == [1, 16]                      # one input per batch size, shared by the runtimes
    assert [(r["runtime"], r["batch_size"]) for r in rows] == [("a", 1), ("b", 1), ("a", 16), ("b", 16)]
    for r in rows:
        assert r["median_ms"] > 0 and r["us_per_item"] == pytest.approx(1e3 * r["median_ms"] / r["batch_size"])


def test_latency_table_checks_its_arguments():
    with pytest.raises(TypeError, match="runners"):
        deploy.latency_table({}, torch.randn, [1])
    with pytest.raises(TypeError, match="make_input"):
        deploy.latency_table({"a": abs}, 3, [1])
    with pytest.raises(ValueError, match="batch_sizes"):
        deploy.latency_table({"a": abs}, torch.randn, [])
    with pytest.raises(ValueError, match="batch_sizes"):
        deploy.latency_table({"a": abs}, torch.randn, [4, 0])


# -- sparsity and pruning -----------------------------------------------------------------------
def test_sparsity_counts_zero_weights_of_linear_and_conv_layers_only():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(4, 2), nn.LayerNorm(2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
        model[0].weight[0].zero_()                    # 9 of the conv's 18 weights
        model[2].bias.zero_()                         # biases do not count
        model[3].weight.zero_()                       # nor do LayerNorm weights
    assert deploy.sparsity(model) == pytest.approx(9 / (18 + 8))


def test_sparsity_counts_a_tied_weight_once():
    gpt = small_gpt()
    with torch.no_grad():
        gpt.lm_head.weight[:10].zero_()               # also the embedding: the same tensor
    linear_weights = [m.weight for m in gpt.modules() if isinstance(m, nn.Linear)]
    assert len({id(w) for w in linear_weights}) == len(linear_weights)
    total = sum(w.numel() for w in linear_weights)
    assert deploy.sparsity(gpt) == pytest.approx(10 * 16 / total)


def test_sparsity_needs_prunable_layers():
    with pytest.raises(ValueError, match="no layers of type"):
        deploy.sparsity(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)))
    with pytest.raises(TypeError, match="nn.Module"):
        deploy.sparsity([1, 2])


def test_prune_magnitude_zeroes_the_smallest_weights_globally_on_a_copy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = deploy.prune_magnitude(model, 0.6)
    for k, v in model.state_dict().items():           # the original is untouched
        assert torch.equal(v, before[k])
    assert sorted(pruned.state_dict()) == sorted(model.state_dict())     # no weight_orig / weight_mask
    assert deploy.sparsity(pruned) == pytest.approx(0.6, abs=1e-3)
    # global: every surviving weight is at least as large as every pruned one
    weights = torch.cat([model[0].weight.flatten(), model[2].weight.flatten()]).abs()
    kept = torch.cat([pruned[0].weight.flatten(), pruned[2].weight.flatten()]) != 0
    assert weights[kept].min() >= weights[~kept].max()
    assert torch.equal(pruned[0].bias, model[0].bias)
    assert deploy.sparsity(deploy.prune_magnitude(model, 0.0)) == 0.0
    assert deploy.sparsity(deploy.prune_magnitude(model, 1.0)) == 1.0


def test_prune_magnitude_keeps_gpt_weights_tied():
    pruned = deploy.prune_magnitude(small_gpt(), 0.5)
    assert pruned.lm_head.weight is pruned.transformer.wte.weight
    assert (pruned.transformer.wte.weight == 0).any()
    assert pruned(torch.randint(0, 20, (2, 8))).shape == (2, 8, 20)


@pytest.mark.parametrize("amount", [-0.1, 1.5, True, "0.5", float("nan")])
def test_prune_magnitude_rejects_bad_amounts(amount):
    with pytest.raises(ValueError, match="amount must be a fraction"):
        deploy.prune_magnitude(nn.Linear(3, 3), amount)


# -- distillation -------------------------------------------------------------------------------
def test_distillation_loss_is_hintons_formula():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 5), torch.randn(8, 5) * 3, torch.randint(0, 5, (8,))
    T, a = 3.0, 0.25
    p = torch.softmax(t / T, -1)
    kl = (p * (p.log() - torch.log_softmax(s / T, -1))).sum(-1).mean()
    expected = a * F.cross_entropy(s, y) + (1 - a) * T * T * kl
    assert deploy.distillation_loss(s, t, y, temperature=T, alpha=a).item() == pytest.approx(expected.item(), rel=1e-5)
    assert deploy.distillation_loss(s, t, y, alpha=1.0).item() == pytest.approx(F.cross_entropy(s, y).item())
    assert deploy.distillation_loss(t, t, alpha=0.0).item() == pytest.approx(0.0, abs=1e-6)   # copying the teacher: 0


def test_distillation_loss_flattens_sequence_logits_and_ignores_teacher_gradients():
    s = torch.randn(2, 6, 7, requires_grad=True)
    t = torch.randn(2, 6, 7, requires_grad=True)
    y = torch.randint(0, 7, (2, 6))
    loss = deploy.distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
    flat = deploy.distillation_loss(s.reshape(12, 7), t.reshape(12, 7), y.reshape(12), temperature=2.0, alpha=0.5)
    assert loss.item() == pytest.approx(flat.item())
    loss.backward()
    assert s.grad is not None and t.grad is None


def test_distillation_loss_checks_its_arguments():
    s = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        deploy.distillation_loss(s, torch.randn(4, 5))
    with pytest.raises(ValueError, match="temperature"):
        deploy.distillation_loss(s, s, temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        deploy.distillation_loss(s, s, alpha=1.5)
    with pytest.raises(ValueError, match="pass target"):
        deploy.distillation_loss(s, s, alpha=0.5)


def _blobs(n=96):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))


def _mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_distillation_trainer_with_alpha_one_is_plain_training():
    teacher = _mlp(5)
    plain = lk.Trainer(_mlp(0), loss="cross_entropy", optimizer="sgd", lr=0.1, device="cpu")
    plain.fit(_blobs(), epochs=2)
    distilled = deploy.DistillationTrainer(_mlp(0), teacher, alpha=1.0, optimizer="sgd", lr=0.1, device="cpu")
    distilled.fit(_blobs(), epochs=2)
    for a, b in zip(plain.model.parameters(), distilled.model.parameters()):
        assert torch.equal(a, b)
    assert [r["loss"] for r in plain.history.steps] == [r["loss"] for r in distilled.history.steps]


def test_distillation_trainer_pulls_the_student_towards_a_frozen_teacher():
    teacher = _mlp(5)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    x = torch.randn(64, 4)
    gap = lambda m: deploy.distillation_loss(m(x), teacher(x), temperature=2.0, alpha=0.0).item()
    student = _mlp(0)
    before = gap(student)
    trainer = deploy.DistillationTrainer(student, teacher, temperature=2.0, alpha=0.0, lr=1e-2, device="cpu")
    trainer.fit(_blobs(), epochs=5)
    assert gap(student) < 0.5 * before
    for k, v in teacher.state_dict().items():         # the caller's teacher is not trained or changed
        assert torch.equal(v, teacher_state[k])
    assert all(p.requires_grad for p in teacher.parameters()) and teacher.training
    scores = trainer.evaluate(_blobs())                # evaluation: cross-entropy on the true labels
    expected = F.cross_entropy(student(_blobs().dataset.tensors[0]), _blobs().dataset.tensors[1]).item()
    assert scores["loss"] == pytest.approx(expected, rel=1e-5)


def test_distillation_trainer_checks_its_arguments():
    with pytest.raises(TypeError, match="teacher must be"):
        deploy.DistillationTrainer(_mlp(0), "teacher")
    with pytest.raises(TypeError, match="takes no loss"):
        deploy.DistillationTrainer(_mlp(0), _mlp(1), loss="mse")
    with pytest.raises(ValueError, match="temperature"):
        deploy.DistillationTrainer(_mlp(0), _mlp(1), temperature=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        deploy.DistillationTrainer(_mlp(0), _mlp(1), alpha=2)
