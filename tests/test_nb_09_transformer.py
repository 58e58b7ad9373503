"""Executes notebooks/09_transformer.ipynb in quick mode and checks what it reports."""
import math

import pytest

pytestmark = pytest.mark.notebook


def test_09_transformer_quick(run_notebook):
    nb = run_notebook("09_transformer")
    r = nb.records
    # attention, multi-head attention and the block written from scratch agree with PyTorch / lk.models.GPT
    assert r["sdpa_max_error"] <= 1e-5
    assert r["mha_max_error"] <= 1e-5
    assert r["block_max_error"] <= 1e-5
    # an untrained model guesses uniformly: loss close to ln(vocab_size)
    assert r["vocab_size"] == 103
    assert abs(r["initial_loss"] - math.log(r["vocab_size"])) < 0.5
    # trained: below the 3.24 that character frequencies alone give, so it uses context
    assert r["gpt_val_loss"] < 3.1
    assert r["lstm_val_loss"] < r["initial_loss"] - 1.0
    assert r["gpt_params"] > 0 and r["lstm_params"] > 0
    assert r["gpt_tokens_per_s"] > 0 and r["lstm_tokens_per_s"] > 0
    # the sample continues the prompt with 300 generated characters from the vocabulary
    assert r["sample"].startswith('The "for" statement')
    assert len(r["sample"]) == len('The "for" statement') + 300
    assert nb.path.stat().st_size < 1_000_000


def test_09_transformer_checks_head_count(run_notebook):
    """Parameters reach the model: 3 heads cannot split quick mode's 64 embedding dimensions."""
    with pytest.raises(Exception, match=r"n_embd=64 must be divisible by n_head=3"):
        run_notebook("09_transformer", n_head=3)


def test_09_step_panel_and_its_samples(run_notebook):
    r = run_notebook("09_transformer").records
    panel = r["step_panel"]
    # a step-based run: 40 steps in quick mode, an evaluation and an 80-character sample every 20
    assert panel["steps"] == 40 and panel["sample_steps"] == [20, 40]
    assert all(s.startswith('The "for" statement') and len(s) == len('The "for" statement') + 80
               for s in panel["samples"])
    losses = panel["val_losses"]
    assert losses[-1] < losses[0] < math.log(r["vocab_size"]) + 0.5   # it learns as it goes
    assert all(0 <= k <= 1 for k in panel["known_words"])
