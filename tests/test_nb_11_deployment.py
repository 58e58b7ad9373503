"""11_deployment: safe save/load, torch.export and ONNX against PyTorch, and int8 quantization,
magnitude pruning and distillation measured on the same two trained models (quick mode)."""
import math

import pytest

pytestmark = pytest.mark.notebook


def test_11_deployment_quick(run_notebook):
    nb = run_notebook("11_deployment")
    r = nb.records
    # the two models train (quick mode: 10 epochs / 200 steps; an untrained GPT scores ln(103) = 4.6)
    assert r["cnn_test_accuracy"] > 0.9
    assert r["gpt_val_loss"] < 3.0                  # well below the 4.6 of a model that knows nothing

    # state_dict + config round trip; a pickled class and a code-running pickle are both refused
    assert r["roundtrip_equal"] is True
    assert r["whole_model_refused"] is True and r["unsafe_pickle_refused"] is True

    # export: torch.export exactly, ONNX Runtime within 1e-4 of PyTorch, latencies for every runtime
    assert r["export_max_diff"] <= 1e-5
    assert r["onnx_available"] is True and r["onnx_max_diff"] <= 1e-4
    assert 0.03 < r["onnx_file_mb"] < 0.2
    assert set(r["latency_ms"]) == {"PyTorch eager", "torch.export", "ONNX Runtime"}
    for runtime in r["latency_ms"].values():
        assert set(runtime) == {"1", "8", "64", "512"} and all(0 < ms < 1e4 for ms in runtime.values())

    # int8: our weight quantization equals PyTorch's; smaller files; accuracy and loss barely move
    assert r["quant_int_max_diff"] <= 1
    cnn_mb, gpt_mb = r["quant_cnn_size_mb"], r["quant_gpt_size_mb"]
    assert cnn_mb["int8"] < 0.7 * cnn_mb["fp32"] and gpt_mb["int8"] < 0.5 * gpt_mb["fp32"]
    assert abs(r["quant_cnn_score"]["int8"] - r["quant_cnn_score"]["fp32"]) <= 0.02
    assert abs(r["quant_gpt_score"]["int8"] - r["quant_gpt_score"]["fp32"]) <= 0.02
    assert r["quant_cnn_score"]["fp32"] == r["cnn_test_accuracy"]

    # pruning: masks equal torch's; the sparsity asked for is the sparsity measured; mild pruning is
    # almost free, extreme pruning is not; dense files do not shrink, compressed ones do
    assert r["prune_masks_agree"] is True
    for asked, measured in zip(r["prune_sparsities"], r["prune_measured"]):
        assert measured == pytest.approx(asked, abs=1e-3)
    acc, loss = r["prune_cnn_accuracy"], r["prune_gpt_val_loss"]
    assert acc[0] == r["cnn_test_accuracy"] and loss[0] == pytest.approx(r["gpt_val_loss"])
    assert acc[1] >= acc[0] - 0.03 and loss[1] <= loss[0] + 0.05          # 30% sparsity
    assert acc[-1] < 0.5 and loss[-1] > loss[0] + 0.5                     # 98% sparsity
    assert len(set(r["prune_cnn_mb"])) == 1
    zipped = r["prune_cnn_zipped_mb"]
    assert all(a > b for a, b in zip(zipped, zipped[1:])) and zipped[-1] < 0.3 * zipped[0]

    # distillation: the loss from scratch matches labkit's; students are far smaller than teachers
    assert r["kd_loss_max_diff"] <= 1e-5
    for name in ("kd_digits", "kd_gpt"):
        assert r[name]["student_params"] < r[name]["teacher_params"] / 5
    assert r["kd_digits"]["alone"] > 0.8 and r["kd_digits"]["distilled"] > 0.8
    gpt_kd = r["kd_gpt"]
    assert gpt_kd["teacher"] < gpt_kd["alone"] and gpt_kd["distilled"] < gpt_kd["alone"] + 0.03

    # the app: the ONNX model's answer for a test image, with probabilities
    app = r["app_result"]
    assert 0 <= app["predicted"] <= 9 and app["probabilities"][app["predicted"]] == max(app["probabilities"])
    assert math.isclose(sum(app["probabilities"]), 1.0, abs_tol=2e-3)
    assert {row["model"] for row in r["summary"]} >= {"CNN fp32", "CNN int8", "GPT int8", "GPT student (distilled)"}

    # serving: the exported model behind /predict; each bad input refused with its status; stopped after
    assert r["serve_available"] is True
    assert r["serve_refusals"] == {"missing field": 422, "wrong type": 422, "wrong shape": 422, "too large": 413,
                                   "not finite": 422}
    assert r["serve_stopped"] is True
    for name, stats in r["load_test"].items():
        assert stats["errors"] == 0 and stats["requests"] == 40, name        # quick: 4 clients x 10 requests
        assert 0 < stats["p50_ms"] <= stats["p95_ms"]
    for model in ("digits CNN", "wide MLP"):
        assert r["load_test"][f"{model} / one at a time"]["model_calls"] == 40
        assert r["load_test"][f"{model} / batched"]["model_calls"] < 40           # requests were merged
    assert set(r["batching_speedup"]) == {"digits CNN", "wide MLP"}
    # the edge budget: int8 files are smaller; the digits CNN fits a microcontroller, the GPT does not
    edge = {row["model"]: row for row in r["edge_budget"]}
    assert edge["digits CNN int8"]["size_kb"] < edge["digits CNN fp32"]["size_kb"]
    assert edge["digits CNN int8"]["fits_microcontroller"] is True
    assert edge["tiny GPT fp32"]["fits_microcontroller"] is False
    assert nb.path.stat().st_size < 1_000_000


def test_11_deployment_alpha_one_distills_nothing(run_notebook):
    # alpha=1 gives all the weight to the true labels: each distilled student must then be its
    # twin trained alone, bit for bit (same weights, batches and loss)
    r = run_notebook("11_deployment", alpha=1.0).records
    assert r["kd_digits"]["distilled"] == r["kd_digits"]["alone"]
    assert r["kd_gpt"]["distilled"] == r["kd_gpt"]["alone"]
