"""08_rnn: RNN, LSTM and GRU cells from scratch, vanishing/exploding gradients and clipping, forecasting,
the adding problem (RNN fails, LSTM succeeds) and a character-level LSTM language model (quick mode)."""
import pytest

pytestmark = pytest.mark.notebook


def test_08_rnn_quick(run_notebook):
    nb = run_notebook("08_rnn")
    r = nb.records
    # the from-scratch cells equal nn.RNN (outputs and BPTT gradients), nn.LSTM and nn.GRU
    for key in ("rnn_max_error", "rnn_grad_max_error", "lstm_max_error", "gru_max_error"):
        assert 0 <= r[key] <= 1e-5, key

    # ||dh_T / dx_1|| at initialization, for T = 5 ... 80
    g = r["early_gradient"]
    rnn, exploding = g["RNN (PyTorch init)"], g["RNN, W_hh orthogonal gain 2"]
    lstm, lstm_open = g["LSTM (PyTorch init)"], g["LSTM, forget bias 1"]
    assert rnn["80"] < 1e-6 * rnn["5"]                     # vanishes
    assert exploding["80"] > 1e3 * exploding["5"]          # explodes
    assert lstm_open["80"] > 1e3 * lstm["80"]              # an open forget gate keeps far more

    # clipping: unclipped SGD on the exploding RNN is stopped by the divergence guard; clipped, it trains
    clip = r["clip"]
    assert clip["unclipped_diverged"] is True and clip["unclipped_steps"] < clip["clipped_steps"] == 100
    assert clip["clipped_max_grad_norm"] > 1.0             # the clip was really needed
    assert clip["clipped_final_loss"] < 1.0

    # forecasting beats "repeat the last value" and approaches the noise floor (0.01)
    assert 0.01 < r["forecast_mse"] < min(0.04, r["forecast_naive_mse"])

    # the adding problem, quick lengths 10 and 25: the LSTM solves the long one, the RNN does not
    assert r["adding_params"] == {"rnn": 32 * 34 + 64 + 33, "lstm": 4 * (32 * 34 + 64) + 33}
    mse, acc = r["adding_mse"], r["adding_accuracy"]
    assert sorted(mse["rnn"], key=int) == ["10", "25"]
    assert mse["lstm"]["25"] < 0.02 < 0.1 < mse["rnn"]["25"]      # 0.1: near the 1/6 of guessing the mean
    assert acc["lstm"]["25"] > acc["rnn"]["25"] + 0.2
    sensitivity = r["adding_first_half_sensitivity"]
    assert sensitivity["lstm"] > 10 * sensitivity["rnn"]
    assert r["adding_gru"]["length"] == 25 and r["adding_gru"]["mse"] < 0.02

    # the character LSTM beats the unigram baseline after 100 steps, and samples from the prompt
    assert r["lm_steps"] == 100
    assert r["lm_val_loss"] < r["lm_unigram_loss"] - 0.5
    assert r["lm_sample"].startswith("The ") and len(r["lm_sample"]) == 4 + 300
    assert nb.path.stat().st_size < 1_000_000


def test_08_rnn_parameters_are_used(run_notebook):
    r = run_notebook("08_rnn", hidden=8, adding_epochs=2, lm_steps=10, forecast_steps=10, clip_steps=20).records
    # hidden=8: an RNN layer has 8 * (2 + 8) weights and 2 * 8 biases, an LSTM four times that; head 8 + 1
    assert r["adding_params"] == {"rnn": 8 * 10 + 16 + 9, "lstm": 4 * (8 * 10 + 16) + 9}
    assert r["lm_steps"] == 10
    assert r["clip"]["clipped_steps"] == 20
    # two epochs are not enough for the LSTM to solve the adding problem at length 25
    assert r["adding_mse"]["lstm"]["25"] > 0.02


def test_08_layer_stats_show_where_gradients_explode(run_notebook):
    r = run_notebook("08_rnn").records["clip_layer_stats"]
    unclipped, clipped = r["no clipping"], next(v for k, v in r.items() if k.startswith("clipped"))
    assert set(unclipped) == set(clipped) == {"rnn", "head"}
    assert unclipped["rnn"]["max_grad_norm"] > unclipped["head"]["max_grad_norm"]
    # unclipped, one step moves the recurrent weights by a large share of their size; clipped, far less
    assert unclipped["rnn"]["max_update_ratio"] > 0.3
    assert max(v["max_update_ratio"] for v in clipped.values()) < unclipped["rnn"]["max_update_ratio"] / 2
