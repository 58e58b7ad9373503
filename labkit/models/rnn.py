"""Recurrent models: a sequence-to-one predictor and a character-level language model."""
from __future__ import annotations

import torch
import torch.nn as nn

from .utils import (check_choice, check_int, check_probability, check_sampling, check_tokens,
                    eval_mode, sample_next)

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class SequenceModel(nn.Module):
    """Read a sequence [B, T, F] and predict [B, output_size] from the last hidden state.

    The last hidden state is the network's summary of everything it has read, which is
    what forecasting the next value, the adding problem or parity need. Comparing
    cell="rnn" with "lstm"/"gru" on long sequences shows why gates help gradients flow.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 cell: str = "lstm", num_layers: int = 1):
        super().__init__()
        check_int("input_size", input_size)
        check_int("hidden_size", hidden_size)
        check_int("output_size", output_size)
        check_choice("cell", cell, CELLS)
        check_int("num_layers", num_layers)
        self.input_size = input_size
        self.cell = cell
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and self.input_size == 1:
            x = x.unsqueeze(-1)  # a batch of univariate series [B, T] -> [B, T, 1]
        if x.dim() != 3 or x.size(-1) != self.input_size:
            raise ValueError(f"SequenceModel was built for input_size={self.input_size} "
                             f"(inputs [B, T, {self.input_size}]), got input of shape {list(x.shape)}")
        out, _ = self.rnn(x)          # out: the top layer's hidden state at every step
        return self.head(out[:, -1])  # keep only the last one


class CharLSTM(nn.Module):
    """Character-level language model: embedding -> LSTM -> linear, logits [B, T, V]."""

    def __init__(self, vocab_size: int, n_embd: int = 64, hidden_size: int = 256,
                 num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        check_int("vocab_size", vocab_size)
        check_int("n_embd", n_embd)
        check_int("hidden_size", hidden_size)
        check_int("num_layers", num_layers)
        check_probability("dropout", dropout)
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, n_embd)
        # nn.LSTM applies dropout only between stacked layers, so we add one on its output too.
        self.lstm = nn.LSTM(n_embd, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def step(self, idx: torch.Tensor, state=None):
        """Logits for tokens idx [B, T] continuing from `state`; returns (logits, new_state).

        Carrying the (h, c) state forward is what lets generation feed one character at a
        time instead of re-reading the whole text for every new character.
        """
        out, state = self.lstm(self.embed(idx), state)
        return self.head(self.drop(out)), state

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        check_tokens(idx)
        return self.step(idx)[0]

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> torch.Tensor:
        """Extend the prompt idx [B, T] by max_new_tokens sampled tokens -> [B, T + new]."""
        check_tokens(idx)
        check_sampling(max_new_tokens, temperature, top_k)
        with eval_mode(self):
            out = [idx]
            logits, state = self.step(idx)
            for _ in range(max_new_tokens):
                nxt = sample_next(logits[:, -1], temperature, top_k).to(idx.dtype)
                out.append(nxt)
                logits, state = self.step(nxt, state)
        return torch.cat(out, dim=1)
