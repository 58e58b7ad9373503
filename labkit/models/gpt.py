"""A decoder-only Transformer language model (GPT), small enough to train on a CPU.

Token + learned position embeddings, a stack of pre-LayerNorm blocks (causal
self-attention, then a GELU MLP, each added back to a residual stream), a final
LayerNorm and a linear head that shares its weights with the token embedding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils import (check_bool, check_int, check_probability, check_sampling, check_tokens,
                    eval_mode, sample_next)


@dataclass
class GPTConfig:
    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64    # the longest context the model can read
    dropout: float = 0.0
    bias: bool = False      # biases in Linear and LayerNorm layers (GPT-2 had them)

    def __post_init__(self):
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size"):
            check_int(name, getattr(self, name))
        check_probability("dropout", self.dropout)
        check_bool("bias", self.bias)
        if self.n_embd % self.n_head:
            divisors = [h for h in range(1, self.n_embd + 1) if self.n_embd % h == 0]
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}: each "
                             f"head gets n_embd // n_head dimensions; pick n_head from {divisors[:12]}"
                             f" or change n_embd")


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        # One Linear makes the queries, keys and values of every head in a single matmul.
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def _qkv(self, x):
        B, T, C = x.shape
        # [B, T, 3C] -> 3 x [B, n_head, T, head_size]: heads become a batch dimension.
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, C // self.n_head)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self._qkv(x)
        # softmax(q k^T / sqrt(head_size)) v with position i attending only to j <= i;
        # PyTorch's fused kernel never materialises the T x T matrix.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # put the heads side by side again
        return self.resid_dropout(self.c_proj(y))

    def attention_weights(self, x):
        """The same attention written out, returning the [B, n_head, T, T] weights."""
        T = x.size(1)
        q, k, _ = self._qkv(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        # -inf becomes exactly 0 after softmax: no token can look ahead.
        return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        # Pre-LayerNorm: normalise what goes into each sublayer but leave the residual
        # stream x untouched, so gradients reach early layers along a clean path.
        x = x + self.attn(self.ln_1(x))   # tokens exchange information
        x = x + self.mlp(self.ln_2(x))    # each token computes on what it gathered
        return x


class GPT(nn.Module):
    """GPT(vocab_size, n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False),
    or GPT(GPTConfig(...)). forward(idx [B, T]) returns next-token logits [B, T, vocab_size]."""

    def __init__(self, vocab_size: int | GPTConfig, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, block_size: int = 64, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        sizes = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                     dropout=dropout, bias=bias)
        if isinstance(vocab_size, GPTConfig):
            defaults = {f.name: f.default for f in fields(GPTConfig) if f.name in sizes}
            changed = sorted(k for k in sizes if sizes[k] != defaults[k])
            if changed:
                raise TypeError(f"pass either a GPTConfig or sizes, not both (got a config and "
                                f"{changed}); use dataclasses.replace(config, ...) to change one")
            config = vocab_size
        else:
            config = GPTConfig(vocab_size=vocab_size, **sizes)
        self.config = config

        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),   # what each token is
            wpe=nn.Embedding(config.block_size, config.n_embd),   # where it is
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: reading a token in and scoring it as the next token use one
        # matrix, which saves parameters and helps small models learn.
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2's init: every block adds its c_proj output to the residual stream, so
        # shrink those weights by sqrt(2 * n_layer) to keep the stream's variance steady.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (the tied embedding/head counted once); non_embedding=True
        leaves out the position embeddings, as GPT papers report model sizes."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def _embed(self, idx):
        check_tokens(idx)
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size="
                             f"{self.config.block_size}, the longest context this GPT has position "
                             f"embeddings for; crop the input to its last {self.config.block_size} "
                             f"tokens or build the model with a larger block_size")
        # Position embeddings for 0..T-1 are just the first T rows: no index tensor needed.
        return self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe.weight[:T])

    def _hidden(self, idx):
        x = self._embed(idx)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self._hidden(idx))

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer, one [B, n_head, T, T] tensor per layer.

        Row i of a map is how much position i draws from each earlier position; rows sum
        to 1 and everything above the diagonal is 0 (the causal mask).
        """
        maps = []
        with eval_mode(self):
            x = self._embed(idx)
            for block in self.transformer.h:
                maps.append(block.attn.attention_weights(block.ln_1(x)))
                x = block(x)
        return maps

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> torch.Tensor:
        """Extend the prompt idx [B, T] by max_new_tokens sampled tokens -> [B, T + new].

        The model can only read block_size tokens, so each step looks at the last
        block_size tokens of the text so far.
        """
        check_tokens(idx)
        check_sampling(max_new_tokens, temperature, top_k)
        with eval_mode(self):
            for _ in range(max_new_tokens):
                # Only the last position's logits are needed to pick the next token.
                logits = self.lm_head(self._hidden(idx[:, -self.config.block_size:])[:, -1])
                nxt = sample_next(logits, temperature, top_k).to(idx.dtype)
                idx = torch.cat([idx, nxt], dim=1)
        return idx
