"""06_data: executed in quick mode; each data problem's effect shows in its records."""
import nbformat
import pytest

pytestmark = pytest.mark.notebook


def test_06_data_quick(run_notebook):
    nb = run_notebook("06_data")
    r = nb.records
    # the messy CSV, read with pandas: 569 patients plus 30% repeated rows, gaps, three spellings
    rows, columns = r["csv_shape"]
    assert rows == 569 + round(0.3 * 569) and columns == 13
    assert r["csv_duplicated_rows"] == round(0.3 * 569)
    assert 0.03 * 5 * rows < r["csv_missing_cells"] < 0.15 * 5 * rows
    assert r["scanner_spellings"][1] == 8 < r["scanner_spellings"][0]
    # the PNG folder through ImageFolder + DataLoader trains a CNN
    assert r["image_folder"] == {"train": 1347, "test": 450, "classes": 10}
    assert r["image_test_accuracy"] > 0.85
    # missing values: dropping loses rows and leaves test rows without an answer
    m = r["missing"]
    assert m["train_rows_kept_by_dropping"] < 0.9 and m["test_rows_answerable_after_dropping"] < 0.9
    assert m["accuracy_impute (all test rows)"] > 0.8
    # duplicates: a random split is inflated; dedup and group split are honest
    leak = r["leakage_accuracy"]
    honest = max(leak["duplicates dropped first"], leak["group split on patient id"])
    assert leak["random split, duplicates kept"] > honest + 0.01, leak
    assert 0.2 < r["leaked_test_fraction"] < 0.6
    # outliers squeeze standard-scaled values; robust scaling keeps the spread
    assert r["outlier_count"] >= 3
    iqr = r["outlier_scaled_iqr"]
    assert iqr["standard"] < 0.25 * iqr["robust"] and 0.5 < iqr["robust"] < 2, iqr
    assert all(0.7 < a <= 1 for a in r["outlier_knn_accuracy"].values())
    # label noise costs accuracy
    noise = {float(k): v for k, v in r["label_noise_accuracy"].items()}
    assert noise[0.0] > 0.85 and noise[max(noise)] < noise[0.0] - 0.01, noise
    # imbalance: a stratified split fixes the minority count; accuracy flatters the dummy; weights find more
    counts = r["minority_test_count_range"]
    assert counts["stratified"][0] == counts["stratified"][1] and counts["random"][1] > counts["random"][0]
    imb = r["imbalance"]
    dummy, plain, weighted = imb["always 'benign'"], imb["logistic regression"], imb["... with class weights"]
    assert dummy["accuracy"] > 0.9 and dummy["balanced_accuracy"] == 0.5 and dummy["recall"] == 0
    assert weighted["recall"] >= plain["recall"] and weighted["balanced_accuracy"] > dummy["balanced_accuracy"] + 0.1
    # categories: one-hot beats leaving the scanner out and coding it as an integer
    cat = r["categorical_accuracy"]
    assert cat["one-hot"] > max(cat["left out"], cat["integer code"]) + 0.015, cat
    assert cat["MLP, one-hot"] > 0.75 and cat["MLP, embedding"] > 0.75
    # hand-made features rescue the linear model; the MLP learns features from raw inputs
    f = r["features_r2"]
    assert f["linear, hand-made features"] > f["linear, raw inputs"] + 0.1
    assert f["MLP, raw inputs"] > f["linear, raw inputs"] + 0.05, f
    # the saved preprocessing + weights reproduce the predictions
    assert r["bundle_predictions_match"] is True and r["bundle_test_accuracy"] > 0.75


def test_06_data_solutions_run_and_checks_pass(run_notebook):
    nb = run_notebook("06_data")
    cells = nbformat.read(nb.path, as_version=4).cells
    solutions = [c for c in cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) >= 5 and all(c.metadata["jupyter"]["source_hidden"] for c in solutions)
    assert all(not any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in solutions)
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert text.count("✓") >= 2 and "✗" not in text


def test_06_data_checks_its_parameters(run_notebook):
    from papermill.exceptions import PapermillExecutionError
    with pytest.raises(PapermillExecutionError, match="parameter 'repeats' must be int"):
        run_notebook("06_data", repeats="ten")
