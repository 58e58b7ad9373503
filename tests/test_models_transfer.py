"""Tests for lk.models.GPTClassifier: pooling, frozen bodies, LoRA bodies, parameter groups."""
import pytest
import torch
import torch.nn as nn

from labkit.models import GPT, GPTClassifier, add_lora, count_parameters


pytestmark = pytest.mark.usefixtures("seed_and_one_thread")


def tiny_gpt():
    return GPT(11, n_layer=2, n_head=2, n_embd=16, block_size=8)


def test_mean_and_last_pooling_read_the_final_hidden_states():
    body = tiny_gpt()
    idx = torch.randint(0, 11, (3, 8))
    hidden = body.transformer.ln_f(body.transformer.h[1](body.transformer.h[0](
        body.transformer.wte(idx) + body.transformer.wpe.weight[:8])))
    mean, last = GPTClassifier(body, 4, pooling="mean"), GPTClassifier(body, 4, pooling="last")
    torch.testing.assert_close(mean.features(idx), hidden.mean(dim=1))
    torch.testing.assert_close(last.features(idx), hidden[:, -1])
    assert mean(idx).shape == last(idx).shape == (3, 4)
    torch.testing.assert_close(mean(idx), mean.head(hidden.mean(dim=1)))


def test_last_pooling_ignores_nothing_mean_pooling_sees_every_position():
    """A causal body: changing the first token changes the last position too (it attends back)."""
    clf = GPTClassifier(tiny_gpt(), 3, pooling="last")
    idx = torch.randint(0, 11, (1, 8))
    other = idx.clone()
    other[0, 0] = (idx[0, 0] + 1) % 11
    assert not torch.allclose(clf.features(idx), clf.features(other))


def test_frozen_body_is_a_linear_probe():
    clf = GPTClassifier(tiny_gpt().requires_grad_(False), 5)
    assert count_parameters(clf, trainable_only=True) == 16 * 5 + 5
    loss = nn.functional.cross_entropy(clf(torch.randint(0, 11, (4, 8))), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is None for p in clf.body.parameters())
    assert clf.head.weight.grad is not None


def test_lora_body_trains_only_adapters_and_head():
    body = tiny_gpt()
    n_lora = add_lora(body, r=2, alpha=4, target=("c_attn",))
    clf = GPTClassifier(body, 3)
    assert n_lora == 2 * 2 * (16 + 48)           # two layers, r (d_in + d_out) each
    assert count_parameters(clf, trainable_only=True) == n_lora + 16 * 3 + 3
    # B starts at zero: the adapted body computes what the plain one did
    plain = tiny_gpt()
    plain.load_state_dict({k.replace(".base", ""): v for k, v in body.state_dict().items()
                           if "lora_" not in k})
    idx = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(clf.features(idx), GPTClassifier(plain, 3).features(idx))


def test_param_groups_give_the_body_a_smaller_rate():
    clf = GPTClassifier(tiny_gpt(), 3)
    groups = clf.param_groups(lr=1e-2, body_lr_factor=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 1e-3])
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(clf)
    assert len(clf.param_groups(1e-3, 1.0)) == 2
    clf.body.requires_grad_(False)                 # a probe: only the head's group remains
    assert len(clf.param_groups(1e-3, 0.5)) == 1
    before = clf.body.transformer.wte.weight.clone()
    opt = torch.optim.Adam(clf.param_groups(1e-2))
    nn.functional.cross_entropy(clf(torch.randint(0, 11, (4, 8))), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    torch.testing.assert_close(clf.body.transformer.wte.weight, before)


def test_learns_a_two_class_task():
    """Class 0 sequences are all token 1, class 1 all token 2: a few steps separate them."""
    clf = GPTClassifier(tiny_gpt(), 2)
    x = torch.cat([torch.full((8, 8), 1), torch.full((8, 8), 2)])
    y = torch.cat([torch.zeros(8), torch.ones(8)]).long()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(clf(x), y).backward()
        opt.step()
    assert (clf(x).argmax(1) == y).all()


def test_bad_arguments_name_the_parameter():
    with pytest.raises(TypeError, match="body must be an lk.models.GPT"):
        GPTClassifier(nn.Linear(3, 3), 2)
    with pytest.raises(ValueError, match="pooling='max' is not supported"):
        GPTClassifier(tiny_gpt(), 2, pooling="max")
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        GPTClassifier(tiny_gpt(), 1)
    with pytest.raises(TypeError, match="n_classes must be an int"):
        GPTClassifier(tiny_gpt(), 2.0)
    clf = GPTClassifier(tiny_gpt(), 2)
    with pytest.raises(ValueError, match="body_lr_factor must be in"):
        clf.param_groups(1e-3, 2.0)
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        clf.param_groups(0.0)
    with pytest.raises(ValueError, match="longer than block_size=8"):
        clf(torch.zeros(1, 9, dtype=torch.long))
