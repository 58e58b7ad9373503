"""Executes notebooks/10_transfer_learning.ipynb in quick mode and checks what it reports."""
import pytest

pytestmark = pytest.mark.notebook

METHODS = ["from scratch", "linear probe", "full fine-tuning", "discriminative rates", "LoRA"]


def test_10_transfer_learning_quick(run_notebook):
    nb = run_notebook("10_transfer_learning")
    r = nb.records
    assert r["pretrain_accuracy"] > 0.9                 # digits 0-4, the source task
    assert r["lora_max_error"] <= 1e-5                  # LoRA from scratch == lk.models.LoRALinear
    # quick mode: 1 %, 5 % and 20 % of the labels; 1 % is one image per digit
    assert list(r["train_sizes"]) == ["0.01", "0.05", "0.2"]
    assert r["train_sizes"]["0.01"] == 5
    assert r["train_sizes"]["0.01"] < r["train_sizes"]["0.05"] < r["train_sizes"]["0.2"]
    acc = r["accuracy"]
    assert set(acc) == set(METHODS) | {"pixels (linear)"}
    for method, by_fraction in acc.items():
        assert set(by_fraction) == {"0.01", "0.05", "0.2"}, method
        assert all(0.0 <= a <= 1.0 for a in by_fraction.values()), method
        assert by_fraction["0.2"] > 0.5, method          # chance is 0.2
    for method in ("from scratch", "full fine-tuning"):
        assert acc[method]["0.2"] > 0.8
        assert acc[method]["0.2"] > acc[method]["0.01"]  # more labels, better
    # trainable parameters: the probe trains the head, LoRA adds r (128 + 64), the rest everything
    n = r["trainable_params"]
    assert n["linear probe"] == 64 * 5 + 5
    assert n["LoRA"] == n["linear probe"] + 4 * (128 + 64)
    assert n["from scratch"] == n["full fine-tuning"] == n["discriminative rates"] > n["LoRA"]
    assert nb.path.stat().st_size < 1_000_000


def test_10_transfer_learning_checks_fractions(run_notebook):
    with pytest.raises(Exception, match=r"fractions must be a non-empty list of numbers in \(0, 1\]"):
        run_notebook("10_transfer_learning", fractions=[0.0, 0.5])
