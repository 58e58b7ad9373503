"""Tests for labkit.models: shapes, validation, causal masking, sampling, LoRA, learning."""
import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from labkit.models import (CNN, GPT, MLP, CharLSTM, GPTConfig, LoRALinear, SequenceModel,
                           add_lora, count_parameters, merge_lora)


pytestmark = pytest.mark.usefixtures("seed_and_one_thread")


def tiny_gpt(**kw):
    cfg = dict(vocab_size=11, n_layer=2, n_head=2, n_embd=16, block_size=8)
    cfg.update(kw)
    return GPT(**cfg)


# ---------------------------------------------------------------- MLP

@pytest.mark.parametrize("hidden", [[], [8], [8, 6]])
def test_mlp_shapes(hidden):
    model = MLP(5, hidden, 3, activation="tanh", dropout=0.1, batchnorm=True)
    assert model(torch.randn(4, 5)).shape == (4, 3)
    assert sum(isinstance(m, nn.Linear) for m in model) == len(hidden) + 1


def test_mlp_without_hidden_layers_is_one_linear_layer():
    model = MLP(64, [], 10)
    assert len(model) == 1 and isinstance(model[0], nn.Linear)
    x = torch.randn(2, 1, 8, 8)  # images are flattened
    torch.testing.assert_close(model(x), model[0](x.flatten(1)))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "identity"])
def test_mlp_activations(activation):
    assert MLP(3, [4], 2, activation=activation)(torch.randn(2, 3)).shape == (2, 2)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(in_features=0), ValueError, "in_features"),
    (dict(in_features=2.5), TypeError, "in_features"),
    (dict(hidden_sizes=16), TypeError, "hidden_sizes"),
    (dict(hidden_sizes=[8, -1]), ValueError, "hidden_sizes[1]"),
    (dict(out_features=True), TypeError, "out_features"),
    (dict(activation="swish"), ValueError, "'relu'"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(batchnorm="yes"), TypeError, "batchnorm"),
])
def test_mlp_validation(kwargs, error, words):
    args = dict(in_features=4, hidden_sizes=[8], out_features=2) | kwargs
    with pytest.raises(error) as info:
        MLP(**args)
    assert words in str(info.value)


def test_mlp_wrong_input_width_is_explained():
    with pytest.raises(ValueError, match=r"in_features=4.*\[3, 5\]"):
        MLP(4, [8], 2)(torch.randn(3, 5))


# ---------------------------------------------------------------- CNN

@pytest.mark.parametrize("size", [8, 28])
def test_cnn_shapes(size):
    model = CNN(input_size=size, n_classes=7, batchnorm=True, dropout=0.2)
    assert model(torch.randn(3, 1, size, size)).shape == (3, 7)
    # the same loader can feed an MLP and a CNN: flat rows and [B, H, W] work too
    assert model(torch.randn(3, size * size)).shape == (3, 7)
    assert model(torch.randn(3, size, size)).shape == (3, 7)


def test_cnn_flatten_size_comes_from_input_size():
    assert CNN(input_size=8, channels=(4, 6)).classifier[1].in_features == 6 * 2 * 2
    assert CNN(input_size=28, channels=(4, 6)).classifier[1].in_features == 6 * 7 * 7
    assert CNN(in_channels=3, input_size=32, channels=(5,)).classifier[1].in_features == 5 * 16 * 16


def test_cnn_dummy_forward_leaves_batchnorm_untouched():
    model = CNN(batchnorm=True)
    assert model.training
    bn = model.features[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_batches_tracked.item() == 0


def test_cnn_wrong_input_size_says_what_it_was_built_for():
    model = CNN(input_size=8)
    with pytest.raises(ValueError, match=r"input_size=8.*\[2, 1, 28, 28\]"):
        model(torch.randn(2, 1, 28, 28))


def test_cnn_validation():
    with pytest.raises(ValueError, match="input_size=4 is too small"):
        CNN(input_size=4, channels=(8, 8, 8))
    with pytest.raises(TypeError, match="channels"):
        CNN(channels=16)
    with pytest.raises(ValueError, match="kernel_size"):
        CNN(kernel_size=0)


def test_cnn_transfer_learning_freeze_body_new_head():
    model = CNN(channels=(4, 8), hidden=16)
    model.features.requires_grad_(False)
    model.classifier[-1] = nn.Linear(16, 3)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    n_head = count_parameters(model.classifier)
    assert count_parameters(model, trainable_only=True) == n_head
    assert count_parameters(model) == n_head + count_parameters(model.features)


# ---------------------------------------------------------------- RNNs

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sequence_model_shapes(cell):
    model = SequenceModel(3, 8, 2, cell=cell, num_layers=2)
    assert model(torch.randn(4, 5, 3)).shape == (4, 2)


def test_sequence_model_predicts_from_the_last_step():
    model = SequenceModel(1, 8, 1, cell="gru")
    x = torch.randn(2, 6)  # univariate series [B, T] are accepted
    out, _ = model.rnn(x.unsqueeze(-1))
    torch.testing.assert_close(model(x), model.head(out[:, -1]))


def test_sequence_model_validation():
    with pytest.raises(ValueError, match="'lstm'"):
        SequenceModel(1, 8, 1, cell="transformer")
    with pytest.raises(ValueError, match=r"input_size=3"):
        SequenceModel(3, 8, 1)(torch.randn(2, 5, 4))


def test_char_lstm_logits_and_generate():
    model = CharLSTM(vocab_size=13, n_embd=8, hidden_size=16, num_layers=2, dropout=0.1)
    idx = torch.randint(0, 13, (2, 5))
    assert model(idx).shape == (2, 5, 13)
    out = model.generate(idx, max_new_tokens=7, top_k=3)
    assert out.shape == (2, 12) and torch.equal(out[:, :5], idx)
    assert out.min() >= 0 and out.max() < 13
    assert model.training  # generate restores the training mode


def test_char_lstm_state_carries_the_context():
    model = CharLSTM(vocab_size=9, n_embd=8, hidden_size=16, num_layers=2)
    with torch.no_grad():  # larger weights: the next token depends on more than the last one
        for p in model.parameters():
            p.mul_(4)
    idx = torch.randint(0, 9, (4, 6))
    first, state = model.step(idx[:, :4])
    rest, _ = model.step(idx[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), model(idx))
    # greedy generation, feeding one token at a time, equals re-reading the whole text
    out = model.generate(idx, max_new_tokens=12, temperature=0)
    for _ in range(12):
        idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, idx)


# ---------------------------------------------------------------- GPT

def test_gpt_shapes_and_config():
    model = tiny_gpt()
    assert model(torch.randint(0, 11, (3, 8))).shape == (3, 8, 11)
    assert model(torch.randint(0, 11, (3, 5))).shape == (3, 5, 11)
    same = GPT(GPTConfig(vocab_size=11, n_layer=2, n_head=2, n_embd=16, block_size=8))
    assert same.num_params() == model.num_params() == count_parameters(model)
    assert model.num_params(non_embedding=True) == model.num_params() - 8 * 16
    with pytest.raises(TypeError, match="not both"):
        GPT(GPTConfig(vocab_size=11), n_layer=2)


def test_gpt_weight_tying_and_init():
    model = GPT(50, n_layer=6, n_embd=64, n_head=4, block_size=16)
    assert model.lm_head.weight is model.transformer.wte.weight
    fc = model.transformer.h[0].mlp.c_fc.weight
    proj = model.transformer.h[0].mlp.c_proj.weight
    assert abs(fc.std().item() - 0.02) < 0.002
    assert abs(proj.std().item() - 0.02 / (2 * 6) ** 0.5) < 0.001


def test_gpt_validation():
    with pytest.raises(ValueError, match=r"n_embd=30 must be divisible by n_head=4.*\[1, 2, 3, 5"):
        GPT(10, n_head=4, n_embd=30)
    with pytest.raises(ValueError, match="dropout"):
        GPT(10, dropout=-0.1)
    with pytest.raises(TypeError, match="vocab_size"):
        GPT("abc")


def test_gpt_is_causal():
    model = tiny_gpt()
    idx = torch.randint(0, 11, (1, 8))
    changed = idx.clone()
    changed[0, 5:] = (idx[0, 5:] + 1) % 11
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])            # the past cannot see the future
    assert not torch.allclose(a[:, 5:], b[:, 5:])             # but later positions do change


def test_gpt_block_size_overflow_is_explained():
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"length 9 is longer than block_size=8"):
        model(torch.randint(0, 11, (1, 9)))


def test_gpt_rejects_float_tokens():
    with pytest.raises(ValueError, match=r"integer tensor shaped \[B, T\]"):
        tiny_gpt()(torch.randn(1, 4))


def test_gpt_attention_maps():
    model = tiny_gpt(dropout=0.1)
    idx = torch.randint(0, 11, (3, 6))
    maps = model.attention_maps(idx)
    assert len(maps) == 2 and all(m.shape == (3, 2, 6, 6) for m in maps)
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(3, 2, 6))
        assert torch.all(m.triu(1) == 0)
        assert torch.all(m[..., torch.ones(6, 6, dtype=torch.bool).tril()] > 0)
        assert not m.requires_grad
    assert model.training


def test_gpt_attention_maps_agree_with_the_fused_kernel():
    # Recompute layer 0's attention output from the explicit weights: it must match SDPA.
    model = tiny_gpt()
    idx = torch.randint(0, 11, (2, 7))
    attn = model.transformer.h[0].attn
    x = model.transformer.h[0].ln_1(model._embed(idx))
    weights = model.attention_maps(idx)[0]
    _, _, v = attn._qkv(x)
    y = (weights @ v).transpose(1, 2).reshape(2, 7, 16)
    torch.testing.assert_close(attn.c_proj(y), attn(x))


def test_gpt_generate_length_and_context_crop():
    model = tiny_gpt()
    prompt = torch.randint(0, 11, (2, 3))
    out = model.generate(prompt, max_new_tokens=12)  # longer than block_size: must crop
    assert out.shape == (2, 15) and torch.equal(out[:, :3], prompt)
    assert model.generate(prompt, 0).shape == (2, 3)
    # a full-length prompt is read whole: the first greedy token is the model's argmax
    full = torch.randint(0, 11, (32, 8))
    first = model.generate(full, max_new_tokens=1, temperature=0)[:, -1]
    assert torch.equal(first, model(full)[:, -1].argmax(-1))


def test_gpt_generate_top_k():
    model = tiny_gpt(bias=True)
    with torch.no_grad():
        # The final LayerNorm now outputs e_0 whatever the context, so the logits are
        # lm_head.weight[:, 0]: tokens 3 and 7 are the two best, all others tie below.
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[3, 0] = 1.0
        model.lm_head.weight[7, 0] = 0.9
    prompt = torch.zeros(64, 1, dtype=torch.long)
    out = model.generate(prompt, max_new_tokens=5, temperature=5.0, top_k=2)[:, 1:]
    assert set(out.unique().tolist()) <= {3, 7}
    wide = model.generate(prompt, max_new_tokens=5, temperature=5.0)[:, 1:]
    assert len(wide.unique()) > 2  # without top_k, high temperature reaches other tokens
    with pytest.raises(ValueError, match="top_k"):
        model.generate(prompt, 2, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 2, temperature=-1)


# ---------------------------------------------------------------- LoRA

def test_lora_linear_starts_as_base_and_trains_only_a_b():
    base = nn.Linear(6, 4)
    lora = LoRALinear(base, r=2, alpha=4)
    x = torch.randn(5, 6)
    torch.testing.assert_close(lora(x), base(x))
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A", "lora_B"}
    assert lora.lora_A.shape == (2, 6) and lora.lora_B.shape == (4, 2)
    assert count_parameters(lora, trainable_only=True) == 2 * 6 + 4 * 2


def test_lora_merge_matches_forward():
    lora = LoRALinear(nn.Linear(6, 4), r=3, alpha=6)
    with torch.no_grad():
        lora.lora_B.normal_()
    x = torch.randn(5, 6)
    merged = lora.merge()
    assert type(merged) is nn.Linear
    assert not torch.allclose(lora(x), lora.base(x))
    torch.testing.assert_close(merged(x), lora(x))


def test_lora_validation():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="r must be"):
        LoRALinear(nn.Linear(2, 2), r=0)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(nn.Linear(2, 2), alpha=0)


def test_add_lora_by_name_on_gpt():
    model = tiny_gpt()
    n = add_lora(model, r=2, alpha=4, target=("c_attn",))
    # two layers, each c_attn: 16 -> 48, so A is 2x16 and B is 48x2
    assert n == 2 * (2 * 16 + 48 * 2)
    assert count_parameters(model, trainable_only=True) == n
    assert all(isinstance(b.attn.c_attn, LoRALinear) for b in model.transformer.h)
    assert isinstance(model.transformer.h[0].attn.c_proj, nn.Linear)
    assert model(torch.randint(0, 11, (1, 4))).shape == (1, 4, 11)
    with pytest.raises(ValueError, match="matched no nn.Linear.*c_attn"):
        add_lora(tiny_gpt(), target="q_proj")
    untouched = tiny_gpt()
    with pytest.raises(ValueError, match="alpha"):
        add_lora(untouched, alpha=-1)
    assert count_parameters(untouched, trainable_only=True) == count_parameters(untouched)


def test_add_lora_by_type_does_not_wrap_twice_and_merges_back():
    model = MLP(4, [8], 3)
    before = model(torch.ones(2, 4))
    assert add_lora(model, r=1, alpha=1, target="0") == 1 * 4 + 8 * 1
    # by type: only the Linear not yet adapted is wrapped, not the frozen base inside "0"
    n = add_lora(model, r=1, alpha=1, target=nn.Linear)
    assert n == (1 * 4 + 8 * 1) + (1 * 8 + 3 * 1)
    assert isinstance(model[0].base, nn.Linear) and isinstance(model[2], LoRALinear)
    with pytest.raises(ValueError, match="already wrapped"):
        add_lora(model, target=nn.Linear)
    torch.testing.assert_close(model(torch.ones(2, 4)), before)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(torch.ones(2, 4)), before)


# ---------------------------------------------------------------- learning

def _fits(model, x, y, loss_fn, steps=15, lr=0.05):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    first = loss_fn(model(x), y).item()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss_fn(model(x), y).item() < 0.8 * first


def _lm_loss(logits, y):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def test_gradients_flow_in_every_model():
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    assert _fits(MLP(64, [32], 10), x, y, F.cross_entropy)
    assert _fits(CNN(channels=(4, 8), hidden=16), x, y, F.cross_entropy)
    seq, target = torch.randn(16, 5, 2), torch.randn(16, 1)
    assert _fits(SequenceModel(2, 16, 1, cell="lstm"), seq, target, F.mse_loss)
    tokens = torch.randint(0, 11, (4, 9))
    assert _fits(CharLSTM(11, n_embd=8, hidden_size=32, num_layers=1), tokens[:, :-1], tokens[:, 1:], _lm_loss)
    assert _fits(tiny_gpt(), tokens[:, :-1], tokens[:, 1:], _lm_loss, lr=0.01)


def test_lora_fine_tuning_changes_only_the_adapters():
    model = tiny_gpt()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    # the head is adapted too: with a frozen head of std 0.02 a tiny model's logits
    # can barely move, whatever the blocks learn
    add_lora(model, r=2, alpha=4, target=("c_attn", "c_fc", "lm_head"))
    tokens = torch.randint(0, 11, (4, 9))
    assert _fits(model, tokens[:, :-1], tokens[:, 1:], _lm_loss, steps=20, lr=0.02)
    for name, p in model.named_parameters():
        if "lora_" not in name:
            torch.testing.assert_close(p, frozen[name.replace(".base", "")])


def test_config_dataclass_replace():
    cfg = GPTConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=8, block_size=4)
    bigger = dataclasses.replace(cfg, block_size=16)
    assert GPT(bigger).config.block_size == 16
    with pytest.raises(ValueError, match="n_head"):
        dataclasses.replace(cfg, n_head=3)
