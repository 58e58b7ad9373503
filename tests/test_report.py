"""The HTML course book: math as MathML at build time, sidebar and pager, solutions folded, results tables."""
import re

import nbformat

from labkit.record import MIMETYPE
from labkit.report import chapter_title, markdown_to_html, tex_to_mathml, write_html_report


def test_math_becomes_mathml_and_code_keeps_its_dollars():
    out = markdown_to_html("Loss $L = \\frac{1}{n}\\sum_i e_i^2$ and\n\n$$\\hat y_i = w^\\top x_i$$\n\n"
                           "Price `$5` and ```\nx = '$a$'\n```")
    assert out.count("<math") == 2 and 'display="block"' in out
    assert "$$" not in out and "$L" not in out
    assert "<code>$5</code>" in out and "'$a$'" in out        # code spans and blocks are not math
    assert "<em>" not in out                                  # the underscores of the math were not markdown
    assert re.search(r"<mfrac>", out)


def test_unconvertible_tex_is_shown_as_source():
    assert tex_to_mathml("\\frac{1}{").startswith('<code class="tex">')


def _notebook(path, title, records=(), solution=True):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\nThe rule $w \\leftarrow w - \\eta g$."))
    cell = nbformat.v4.new_code_cell("print('hi')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi <there>\n")]
    for name, value in records:
        cell.outputs.append(nbformat.v4.new_output("display_data", data={
            MIMETYPE: {"name": name, "value": value}, "text/plain": f"{name} = {value}"}))
    nb.cells.append(cell)
    if solution:
        sol = nbformat.v4.new_code_cell("answer = 42", execution_count=2)
        sol.metadata = {"tags": ["solution"], "jupyter": {"source_hidden": True}}
        nb.cells.append(sol)
    nbformat.write(nb, path)
    return path


def test_book_pages_link_in_order_with_results_and_folded_solutions(tmp_path):
    a = _notebook(tmp_path / "01_a.ipynb", "01 · First", [("acc", 0.875)])
    b = _notebook(tmp_path / "02_b.ipynb", "02 · Second", [("loss", 0.25)])
    c = _notebook(tmp_path / "03_c.ipynb", "03 · Third")
    missing = tmp_path / "04_never.ipynb"
    rows = [{"status": "ok", "seconds": 1.0, "records": {"acc": 0.875}, "error": ""},
            {"status": "ok", "seconds": 2.0, "records": {"loss": 0.25}, "error": ""},
            {"status": "ok", "seconds": 2.0, "records": {}, "error": ""},
            {"status": "failed", "seconds": 0.0, "records": {}, "error": "boom"}]
    out = tmp_path / "book"
    index = write_html_report([a, b, c, missing], out, rows)
    assert chapter_title(a) == "01 · First"
    second = (out / "02_b.html").read_text()
    # sidebar: every chapter, this one marked; pager: previous and next
    assert '<li class="current"><a href="02_b.html">02 · Second</a>' in second
    assert 'href="01_a.html">← 01 · First' in second and 'href="03_c.html">03 · Third →' in second
    assert "04_never (not run)" in second
    # math rendered at build time, no script or CDN needed
    assert "<math" in second and "$" not in re.sub(r"<script.*?</script>", "", second, flags=re.S)
    assert "mathjax" not in second.lower() and "cdn" not in second.lower()
    # outputs escaped, solutions collapsed, results table at the end
    assert "hi &lt;there&gt;" in second
    assert re.search(r"<details class=\"solution\"><summary>Solution</summary>.*answer", second, re.S)
    assert "<details open" not in second
    results = second[second.index("Recorded results"):]
    assert "<code>loss</code></td><td>0.25</td>" in results
    first = (out / "01_a.html").read_text()
    assert 'href="index.html">← Contents' in first and "02 · Second →" in first
    last = (out / "03_c.html").read_text()
    assert "Recorded results" not in last                  # nothing recorded: no empty table
    assert '<script src="plotly.min.js"' in second and (out / "plotly.min.js").exists()
    text = index.read_text()
    assert '<a href="01_a.html">01_a</a>' in text and "acc = 0.875" in text and "boom" in text
    assert not (out / "04_never.html").exists()
