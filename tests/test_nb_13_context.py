"""13_context: runs in seconds; its numbers are the published ones."""
import nbformat
import pytest

pytestmark = pytest.mark.notebook


def test_13_context_quick(run_notebook):
    nb = run_notebook("13_context")
    r = nb.records
    years = r["timeline_years"]
    assert years["Perceptron"] == 1958 and years["Backpropagation"] == 1986 and years["AlexNet"] == 2012
    assert years["word2vec"] == 2013 and years["Adam"] == 2014 and years["Transformer"] == 2017
    assert years["BERT"] == 2018 and years["GPT-2"] == 2019 and years["GPT-3"] == 2020 and years["Scaling laws"] == 2020
    p = r["parameters"]
    assert p["BERT-Base (2018)"] == 110e6 and p["BERT-Large (2018)"] == 340e6
    assert p["GPT-2 (2019)"] == 1.5e9 and p["GPT-3 (2020)"] == 175e9 and p["AlexNet (2012)"] == 60e6
    assert r["matmul_gflops"] > 0
    cells = nbformat.read(nb.path, as_version=4).cells
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert text.count("✓") == 3 and "✗" not in text                    # the solutions pass their checks
    table = "".join(c.source for c in cells if c.cell_type == "markdown")
    for fact in ("1958", "1986", "15.3%", "110 million", "340 million", "1.5 billion", "175 billion", "2017"):
        assert fact in table, fact
