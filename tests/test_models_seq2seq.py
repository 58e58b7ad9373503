"""lk.models.Seq2Seq: its attention and layers against PyTorch's, its masks, greedy decoding, bad input."""
import pytest
import torch
import torch.nn as nn

import labkit as lk
from labkit.models.seq2seq import DecoderLayer, EncoderLayer, MultiHeadAttention, build_mask

D, H = 32, 4
# float32 sums of a few dozen products: differences of ~1e-6 on outputs of order 1, on any CPU
TOL = 1e-5


def torch_sizes():
    return dict(d_model=D, nhead=H, dim_feedforward=4 * D, dropout=0.0, activation="gelu",
                batch_first=True, norm_first=True)


def padding(lengths, T):
    return torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1.0)).item()


def test_attention_with_padding_and_causal_masks_matches_nn_multiheadattention():
    torch.manual_seed(0)
    ours, ref = MultiHeadAttention(D, H), nn.MultiheadAttention(D, H, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x, pad = torch.randn(3, 9, D), padding([9, 5, 2], 9)
    causal = torch.ones(9, 9, dtype=torch.bool).triu(1)
    with torch.no_grad():
        for is_causal in (False, True):
            y = ours(x, key_padding_mask=pad, causal=is_causal)
            y_ref, w_ref = ref(x, x, x, key_padding_mask=pad, attn_mask=causal if is_causal else None,
                               average_attn_weights=False)
            assert rel_err(y, y_ref) <= TOL and rel_err(ours.weights, w_ref) <= TOL
            assert torch.all(ours.weights[pad[:, None, None, :].expand_as(ours.weights)] == 0)


def test_cross_attention_matches_nn_multiheadattention():
    torch.manual_seed(1)
    ours, ref = MultiHeadAttention(D, H), nn.MultiheadAttention(D, H, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x, memory, pad = torch.randn(2, 4, D), torch.randn(2, 7, D), padding([7, 3], 7)
    with torch.no_grad():
        y = ours(x, memory, key_padding_mask=pad)
        y_ref, w_ref = ref(x, memory, memory, key_padding_mask=pad, average_attn_weights=False)
    assert y.shape == (2, 4, D) and ours.weights.shape == (2, H, 4, 7)
    assert rel_err(y, y_ref) <= TOL and rel_err(ours.weights, w_ref) <= TOL


def test_layers_match_torch_transformer_layers_with_the_same_weights():
    torch.manual_seed(2)
    enc, dec = EncoderLayer(D, H), DecoderLayer(D, H)
    torch_enc, torch_dec = nn.TransformerEncoderLayer(**torch_sizes()), nn.TransformerDecoderLayer(**torch_sizes())
    torch_enc.load_state_dict(enc.state_dict())
    torch_dec.load_state_dict(dec.state_dict())
    src, tgt, pad = torch.randn(3, 8, D), torch.randn(3, 5, D), padding([8, 6, 1], 8)
    with torch.no_grad():
        e, e_ref = enc(src, pad), torch_enc(src, src_key_padding_mask=pad)
        d = dec(tgt, src, pad)
        d_ref = torch_dec(tgt, src, tgt_mask=torch.ones(5, 5, dtype=torch.bool).triu(1),
                          memory_key_padding_mask=pad)
    assert rel_err(e[~pad], e_ref[~pad]) <= TOL
    assert rel_err(d, d_ref) <= TOL


def test_build_mask_combines_padding_and_causal():
    pad = padding([3, 1], 3)
    m = build_mask(3, 3, pad, causal=True)
    assert m.shape == (2, 1, 3, 3)
    expected = torch.ones(3, 3, dtype=torch.bool).triu(1) | pad[:, None, :]
    assert torch.equal(m[:, 0], expected)
    assert build_mask(2, 3) is None


def test_encoding_ignores_padding_and_decoder_is_causal():
    torch.manual_seed(3)
    model = lk.models.Seq2Seq(13, d_model=D, n_head=H, n_layer=2, max_len=16)
    src = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        alone = model.encode(src)[0]
        padded = model.encode(torch.cat([src, torch.zeros(1, 4, dtype=torch.long)], 1))[0][:, :3]
        assert rel_err(padded, alone) <= 1e-4          # two layers deep: a little more rounding
        tgt = torch.tensor([[1, 4, 5, 6, 7]])
        changed = tgt.clone()
        changed[0, 3:] = torch.tensor([9, 10])
        a, b = model(src, tgt), model(src, changed)
    assert rel_err(a[:, :3], b[:, :3]) <= TOL           # positions before the change cannot see it
    assert (a[:, 3:] - b[:, 3:]).abs().max() > 1e-3


def test_greedy_is_argmax_decoding_and_stops_at_eos():
    torch.manual_seed(4)
    model = lk.models.Seq2Seq(13, d_model=D, n_head=H, n_layer=1, max_len=12).eval()
    src = torch.randint(3, 13, (4, 5))
    out = model.greedy(src, bos_id=1, eos_id=2, max_new_tokens=6)
    assert out.shape[0] == 4 and 2 <= out.shape[1] <= 7 and torch.all(out[:, 0] == 1)
    manual = torch.ones(4, 1, dtype=torch.long)
    with torch.no_grad():
        for _ in range(out.shape[1] - 1):
            manual = torch.cat([manual, model(src, manual)[:, -1].argmax(-1, keepdim=True)], 1)
    for row, ref in zip(out, manual):                    # equal up to each row's first EOS
        stop = (ref == 2).nonzero()
        n = stop[0, 0].item() + 1 if len(stop) else len(ref)
        assert torch.equal(row[:n], ref[:n])
        assert torch.all(row[n:] == 2)


def test_seq2seq_learns_to_copy():
    """A few hundred steps on copying 3-digit strings: the machinery trains end to end."""
    torch.manual_seed(5)
    model = lk.models.Seq2Seq(13, d_model=32, n_head=4, n_layer=1, max_len=6)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        src = torch.randint(3, 13, (32, 3))
        tgt = torch.cat([torch.ones(32, 1, dtype=torch.long), src, torch.full((32, 1), 2)], 1)
        loss = nn.functional.cross_entropy(model(src, tgt[:, :-1]).flatten(0, 1), tgt[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    src = torch.randint(3, 13, (200, 3), generator=torch.Generator().manual_seed(6))
    out = model.greedy(src, 1, 2, max_new_tokens=4)
    assert (out[:, 1:4] == src).all(1).float().mean() > 0.5   # chance: 1 in 1000


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_model=30, n_head=4), "d_model=30 must be divisible by n_head=4"),
    (dict(pad_id=13), "pad_id=13 must be a token id below vocab_size=13"),
    (dict(d_model=0), "d_model"),
    (dict(dropout=1.5), "dropout"),
])
def test_bad_construction_is_refused_with_the_parameter_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lk.models.Seq2Seq(13, **kwargs)


def test_bad_input_is_refused_with_a_clear_message():
    model = lk.models.Seq2Seq(13, d_model=D, n_head=H, n_layer=1, max_len=8)
    with pytest.raises(ValueError, match="src has length 9, longer than max_len=8"):
        model(torch.ones(1, 9, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="tgt must be an integer tensor"):
        model(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 2))
    with pytest.raises(ValueError, match="max_new_tokens=8 needs 9 positions"):
        model.greedy(torch.ones(1, 3, dtype=torch.long), 1, 2, max_new_tokens=8)
