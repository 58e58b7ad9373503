"""An encoder-decoder Transformer (the original Transformer's and T5's shape), small enough for a CPU.

The encoder reads the whole source at once (self-attention with a padding mask, no causal
mask); the decoder writes the target one token at a time (causal self-attention), and in every
layer reads the encoded source through cross-attention. Layers are pre-LayerNorm, as in GPT-2.

Each module stores its weights under the names PyTorch's nn.TransformerEncoderLayer and
nn.TransformerDecoderLayer use (in_proj_weight, out_proj, linear1, norm1, ...), so
`torch_layer.load_state_dict(our_layer.state_dict())` copies one into the other and the two can
be checked against each other.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils import check_int, check_probability, check_tokens, eval_mode


def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v over the last two dims -> (output, weights).

    mask: a bool tensor broadcastable to [..., T_q, T_k], True where a query may NOT look
    (PyTorch's convention for nn.MultiheadAttention's attn_mask and key_padding_mask).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        # -inf becomes exactly 0 after the softmax: masked keys get no weight at all.
        scores = scores.masked_fill(mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def build_mask(T_q: int, T_k: int, key_padding_mask=None, causal: bool = False, device=None):
    """The [B or 1, 1, T_q, T_k] bool mask (True = hidden) for a padding mask and/or a causal mask.

    key_padding_mask: [B, T_k] bool, True at padding positions of the keys. A padded key is hidden
    from every query; the causal mask hides key j from query i when j > i.
    """
    mask = None
    if causal:
        mask = torch.ones(T_q, T_k, dtype=torch.bool, device=device).triu(1)[None, None]
    if key_padding_mask is not None:
        pad = key_padding_mask[:, None, None, :]          # [B, 1, 1, T_k]: the same for every query
        mask = pad if mask is None else (mask | pad)
    return mask


class MultiHeadAttention(nn.Module):
    """Self-attention (memory=None) or cross-attention (queries from x, keys/values from memory).

    Parameters laid out as nn.MultiheadAttention's: in_proj_weight stacks W^Q, W^K, W^V.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        self.n_head = n_head
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        nn.init.xavier_uniform_(self.in_proj_weight)
        self.weights = None            # the last attention weights, [B, n_head, T_q, T_k]

    def forward(self, x, memory=None, key_padding_mask=None, causal=False):
        B, T, C = x.shape
        memory = x if memory is None else memory
        S = memory.size(1)
        w_q, w_kv = self.in_proj_weight.split([C, 2 * C])
        b_q, b_kv = self.in_proj_bias.split([C, 2 * C])
        q = F.linear(x, w_q, b_q)                                   # queries: from the reader
        k, v = F.linear(memory, w_kv, b_kv).split(C, dim=-1)        # keys, values: from what is read
        heads = lambda t, n: t.view(B, n, self.n_head, C // self.n_head).transpose(1, 2)
        mask = build_mask(T, S, key_padding_mask, causal, device=x.device)
        y, self.weights = attention(heads(q, T), heads(k, S), heads(v, S), mask)
        if self.training and self.dropout:
            y = F.dropout(y, self.dropout)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class EncoderLayer(nn.Module):
    """x + SelfAttn(LN(x)) [padding mask only], then x + MLP(LN(x)): nn.TransformerEncoderLayer,
    norm_first=True, activation="gelu"."""

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, pad=None):
        x = x + self.drop(self.self_attn(self.norm1(x), key_padding_mask=pad))   # sees all, both ways
        return x + self.drop(self.linear2(F.gelu(self.linear1(self.norm2(x)))))


class DecoderLayer(nn.Module):
    """Causal self-attention, then cross-attention to the encoded source, then the MLP:
    nn.TransformerDecoderLayer, norm_first=True, activation="gelu"."""

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout)
        self.multihead_attn = MultiHeadAttention(d_model, n_head, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, memory_pad=None):
        x = x + self.drop(self.self_attn(self.norm1(x), causal=True))            # what I wrote so far
        x = x + self.drop(self.multihead_attn(self.norm2(x), memory, memory_pad))  # what I read
        return x + self.drop(self.linear2(F.gelu(self.linear1(self.norm3(x)))))


class Seq2Seq(nn.Module):
    """Seq2Seq(vocab_size, d_model=64, n_head=4, n_layer=2, max_len=32, pad_id=0, dropout=0.0).

    One vocabulary for source and target, learned position embeddings, n_layer encoder and
    n_layer decoder layers. forward(src [B, S], tgt [B, T]) -> logits [B, T, vocab_size] for the
    token after each target position; src positions equal to pad_id are masked out.
    """

    def __init__(self, vocab_size: int, d_model: int = 64, n_head: int = 4, n_layer: int = 2,
                 max_len: int = 32, pad_id: int = 0, dropout: float = 0.0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("n_head", n_head),
                            ("n_layer", n_layer), ("max_len", max_len)):
            check_int(name, value)
        check_int("pad_id", pad_id, minimum=0)
        check_probability("dropout", dropout)
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}: each head "
                             f"gets d_model // n_head dimensions; change n_head or d_model")
        if pad_id >= vocab_size:
            raise ValueError(f"pad_id={pad_id} must be a token id below vocab_size={vocab_size}")
        self.pad_id, self.max_len = pad_id, max_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.encoder = nn.ModuleList([EncoderLayer(d_model, n_head, dropout) for _ in range(n_layer)])
        self.decoder = nn.ModuleList([DecoderLayer(d_model, n_head, dropout) for _ in range(n_layer)])
        self.enc_norm, self.dec_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def _embed(self, idx, name):
        check_tokens(idx, name)
        if idx.size(1) > self.max_len:
            raise ValueError(f"{name} has length {idx.size(1)}, longer than max_len={self.max_len}, "
                             f"the most positions this model has embeddings for; build it with a "
                             f"larger max_len")
        return self.tok(idx) + self.pos.weight[: idx.size(1)]

    def encode(self, src):
        """-> (memory [B, S, d_model], src_pad [B, S] bool, True at padding)."""
        pad = src == self.pad_id
        x = self._embed(src, "src")
        for layer in self.encoder:
            x = layer(x, pad)
        return self.enc_norm(x), pad

    def decode(self, tgt, memory, src_pad):
        x = self._embed(tgt, "tgt")
        for layer in self.decoder:
            x = layer(x, memory, src_pad)
        return self.head(self.dec_norm(x))

    def forward(self, src, tgt):
        memory, pad = self.encode(src)
        return self.decode(tgt, memory, pad)

    @torch.no_grad()
    def greedy(self, src, bos_id: int, eos_id: int, max_new_tokens: int | None = None):
        """Greedy decoding: start from bos_id, append the most likely next token until every row
        has written eos_id (or max_new_tokens). Returns [B, 1 + n] token ids, eos_id-padded."""
        max_new_tokens = self.max_len - 1 if max_new_tokens is None else max_new_tokens
        check_int("max_new_tokens", max_new_tokens)
        if max_new_tokens >= self.max_len:
            raise ValueError(f"max_new_tokens={max_new_tokens} needs {max_new_tokens + 1} positions; "
                             f"this model has max_len={self.max_len}")
        with eval_mode(self):
            memory, pad = self.encode(src)           # the source is read once
            out = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
            done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
            for _ in range(max_new_tokens):
                nxt = self.decode(out, memory, pad)[:, -1].argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                out = torch.cat([out, nxt[:, None]], dim=1)
                done |= nxt == eos_id
                if done.all():
                    break
        return out
