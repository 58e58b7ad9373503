"""08_rnn: RNN, LSTM and GRU cells from scratch, vanishing/exploding gradients and clipping, forecasting
(with a 1-D CNN and a TCN beside the recurrent models), the adding problem (RNN fails, LSTM succeeds), a
character-level LSTM language model, and the exercises' solutions (quick mode)."""
import pytest

from notebook_checks import assert_exercises_solved

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

    # forecasting beats "repeat the last value" and approaches the noise floor: sigma^2 = 0.01 on average; the
    # test set's ~400 noise draws can make it look up to ~20 % lower (relative std of a mean of squares: sqrt(2/400))
    assert 0.75 * 0.01 < r["forecast_mse"] < min(0.04, r["forecast_naive_mse"])

    # 1-D convolutions: the receptive field of kernel 2, dilations 1..16 is 1 + 31 = 32, and the gradient agrees;
    # causal padding never lets a future input through, a centred k=5 kernel sees 2 steps ahead
    rf = r["tcn_receptive_field"]
    assert rf["formula"] == rf["measured"] == 32
    assert rf["future_gradient"] == 0.0 and rf["centred_future_steps"] == 2
    cmp = r["seq_compare"]
    assert sorted(cmp) == ["cnn", "gru", "lstm", "rnn", "tcn"] and r["seq_compare_steps"] == 150
    assert cmp["lstm"]["test_mse"] == pytest.approx(r["forecast_mse"])      # the LSTM is section 4's forecaster
    for kind, s in cmp.items():
        # every model learned the signal: well below repeating the last value, not below the noise floor
        assert 0.75 * 0.01 < s["test_mse"] < 0.75 * r["forecast_naive_mse"], kind
        assert s["val_loss"] < 0.75 * r["forecast_naive_mse"], kind
        assert all(ms > 0 for ms in s["ms_per_step"].values()), kind
    best_recurrent = min(cmp[k]["test_mse"] for k in ("rnn", "lstm", "gru"))
    for kind in ("cnn", "tcn"):                 # the text: the convolutions read the window as well as a recurrence
        assert cmp[kind]["test_mse"] < 1.5 * best_recurrent, kind
    # sequential operations per step: T for a recurrence, the number of layers for a convolution stack
    assert {k: s["sequential_steps"] for k, s in cmp.items()} == {
        "rnn": {"32": 32, "256": 256}, "lstm": {"32": 32, "256": 256}, "gru": {"32": 32, "256": 256},
        "cnn": {"32": 2, "256": 2}, "tcn": {"32": 6, "256": 6}}

    # the adding problem, quick lengths 10 and 25: the LSTM solves the long one, the RNN does not
    assert r["adding_params"] == {"rnn": 32 * 34 + 64 + 33, "lstm": 4 * (32 * 34 + 64) + 33}
    mse, acc = r["adding_mse"], r["adding_accuracy"]
    assert sorted(mse["rnn"], key=int) == ["10", "25"]
    assert mse["lstm"]["25"] < 0.02 < 0.1 < mse["rnn"]["25"]      # 0.1: near the 1/6 of guessing the mean
    assert acc["lstm"]["25"] > acc["rnn"]["25"] + 0.2
    sensitivity = r["adding_first_half_sensitivity"]
    assert sensitivity["lstm"] > 10 * sensitivity["rnn"]
    assert r["adding_gru"]["length"] == 25 and r["adding_gru"]["epochs"] == 10 and r["adding_gru"]["mse"] < 0.02

    # the character LSTM beats the unigram baseline after 100 steps, and samples from the prompt
    assert r["lm_steps"] == 100
    assert r["lm_val_loss"] < r["lm_unigram_loss"] - 0.5
    assert r["lm_sample"].startswith("The ") and len(r["lm_sample"]) == 4 + 300
    assert nb.path.stat().st_size < 1_000_000
    assert_exercises_solved(nb.path, exercises=8, passed_checks=2)    # checks in exercises 7, 8



def test_08_rnn_parameters_are_used(run_notebook):
    r = run_notebook("08_rnn", hidden=8, adding_epochs=2, lm_steps=10, forecast_steps=10, clip_steps=20).records
    # hidden=8: an RNN layer has 8 * (2 + 8) weights and 2 * 8 biases, an LSTM four times that; head 8 + 1
    assert r["adding_params"] == {"rnn": 8 * 10 + 16 + 9, "lstm": 4 * (8 * 10 + 16) + 9}
    assert r["lm_steps"] == 10
    assert r["clip"]["clipped_steps"] == 20
    assert r["seq_compare_steps"] == 10 and r["adding_gru"]["epochs"] == 1
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
