"""HTML reports for ``labkit run --html`` and ``labkit sweep``; they work offline.

``labkit run --html`` writes the course as a small book (``write_html_report``): a page per
executed notebook with a chapter sidebar and previous/next links, math converted from
``$...$``/``$$...$$`` to MathML when the book is built (the browser draws it: no script, no
network), solutions folded in ``<details>``, and the recorded results as a table at the end.

labkit's figures are saved in a notebook as plotly JSON (mimetype ``application/vnd.plotly.v1+json``)
with no HTML; ``plotly_snippet`` turns each into a ``<div>`` plus a ``Plotly.newPlot`` call, and every
page loads one shared ``plotly.min.js`` written next to it. ``PlotlyToHTML`` does the same inside
nbconvert, for anyone exporting a notebook with nbconvert's own templates.
"""
from __future__ import annotations

import html
import json
import os
import re
import uuid
from pathlib import Path

from nbconvert.preprocessors import Preprocessor

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"


def plotly_snippet(figure) -> str:
    """HTML that draws a plotly figure (``{"data": ..., "layout": ...}``) with a global ``Plotly``."""
    if isinstance(figure, str):
        figure = json.loads(figure)
    div_id = f"labkit-plot-{uuid.uuid4().hex[:12]}"
    # "</" inside a <script> would end it early (a trace name could contain "</script>").
    payload = json.dumps(figure).replace("</", "<\\/")
    return (f'<div id="{div_id}" class="labkit-plotly" style="width:100%;"></div>\n'
            f'<script type="text/javascript">\n'
            f'(function () {{\n'
            f'  var fig = {payload};\n'
            f'  fig.config = Object.assign({{responsive: true}}, fig.config || {{}});\n'
            f'  Plotly.newPlot("{div_id}", fig);\n'
            f'}})();\n'
            f'</script>')


class PlotlyToHTML(Preprocessor):
    """Give every plotly JSON output an HTML version, so the HTML exporter draws it."""

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIMETYPE in data and "text/html" not in data:
                data["text/html"] = plotly_snippet(data[PLOTLY_MIMETYPE])
        return cell, resources


def write_plotly_js(out_dir) -> Path:
    """Write the installed plotly.js into ``out_dir``, one copy shared by every page."""
    from plotly.offline import get_plotlyjs

    path = Path(out_dir) / PLOTLY_JS
    path.write_text(get_plotlyjs(), encoding="utf-8")  # rewritten: must match the installed plotly
    return path


def _rounded(value):
    """Floats to 4 significant digits, inside lists and dicts too (for display only)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _format_value(value, width: int = 80) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(_rounded(value), ensure_ascii=False)
        return text if len(text) <= width else text[:width - 3] + "..."
    return str(value)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 0.4em 0.8em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
.ok { color: #1a7f37; } .failed, .interrupted, .cancelled { color: #c62828; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.error { font-family: monospace; font-size: 0.9em; }
"""


def _page(title: str, body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n"
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n{head}</head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n")



# ---------------------------------------------------------------------------------------------
# The course book: one page per executed notebook, readable offline

BOOK_MARKER = "labkit-book"
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<![\s\\])\$", re.S)
# Code is left alone: fenced blocks and inline `code` spans may contain dollar signs.
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]+`)", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """LaTeX -> a MathML ``<math>`` element (rendered by the browser, no script, no network).
    What latex2mathml cannot convert is shown as its TeX source in a ``<code>``."""
    from latex2mathml.converter import convert

    try:
        return convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # an unsupported command: show the source rather than fail the book
        return f'<code class="tex">{html.escape(tex.strip())}</code>'


def markdown_to_html(text: str) -> str:
    """Notebook markdown -> HTML, with ``$...$`` and ``$$...$$`` converted to MathML first (so the
    markdown parser never sees, and mangles, the underscores and asterisks of the math)."""
    import mistune

    pieces, math = [], []

    def protect(match):
        math.append(tex_to_mathml(match.group(1) or match.group(2), display=match.group(1) is not None))
        return f"LABKITMATH{len(math) - 1}X"

    for i, part in enumerate(_CODE.split(text)):
        pieces.append(part if i % 2 else _MATH.sub(protect, part))
    render = mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])
    body = render("".join(pieces))
    return re.sub(r"LABKITMATH(\d+)X", lambda m: math[int(m.group(1))], body)


def _highlight(source: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return highlight(source, PythonLexer(), HtmlFormatter(cssclass="highlight"))


def _output_html(output) -> tuple[str, dict]:
    """One cell output as HTML, and any lk.record values it carries."""
    from labkit.record import MIMETYPE, _decode

    kind = output.get("output_type")
    if kind == "stream":
        return f'<pre class="output">{html.escape(_ANSI.sub("", output.get("text", "")))}</pre>', {}
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
        return f'<pre class="output error">{html.escape(trace)}</pre>', {}
    data = output.get("data", {})
    if MIMETYPE in data:
        bundle = data[MIMETYPE]
        value = _decode(bundle.get("value"))
        return (f'<div class="record">recorded <code>{html.escape(str(bundle.get("name")))}</code> = '
                f'{html.escape(_format_value(value))}</div>', {bundle.get("name"): value})
    if PLOTLY_MIMETYPE in data:
        return plotly_snippet(data[PLOTLY_MIMETYPE]), {}
    if "text/html" in data:
        return f'<div class="output html">{data["text/html"]}</div>', {}
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f'<img class="output" alt="figure" src="data:{mime};base64,{data[mime].strip()}">', {}
    if "image/svg+xml" in data:
        return f'<div class="output">{data["image/svg+xml"]}</div>', {}
    if "text/markdown" in data:
        return f'<div class="output">{markdown_to_html(data["text/markdown"])}</div>', {}
    if "text/plain" in data:
        return f'<pre class="output">{html.escape(_ANSI.sub("", data["text/plain"]))}</pre>', {}
    return "", {}


def _cell_html(cell) -> tuple[str, dict]:
    tags = cell.get("metadata", {}).get("tags", [])
    found: dict = {}
    if cell["cell_type"] == "markdown":
        body = f'<div class="md">{markdown_to_html(cell["source"])}</div>'
    elif cell["cell_type"] == "code":
        parts = [f'<div class="input">{_highlight(cell["source"])}</div>'] if cell["source"].strip() else []
        for output in cell.get("outputs", []):
            text, records = _output_html(output)
            parts.append(text)
            found.update(records)
        body = f'<div class="code">{"".join(parts)}</div>'
    else:
        return "", found
    if "solution" in tags:
        label = "Solution" if cell["cell_type"] == "code" else "Answers"
        body = f'<details class="solution"><summary>{label}</summary>{body}</details>'
    return body, found


def chapter_title(notebook) -> str:
    """The first markdown heading of a notebook, or its file name."""
    import nbformat

    try:
        nb = nbformat.read(os.fspath(notebook), as_version=4)
    except Exception:
        return Path(notebook).stem
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#+\s+(.+)$", cell.source, re.M)
            if match:
                return re.sub(r"[*_`]", "", match.group(1)).strip()
    return Path(notebook).stem


_BOOK_STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font-family: Georgia, 'Times New Roman', serif; color: #1d1d1f; background: #fcfcfa; line-height: 1.55; }
nav.toc { position: fixed; top: 0; left: 0; bottom: 0; width: 16rem; overflow-y: auto; padding: 1.2rem 1rem;
  background: #f1efe9; border-right: 1px solid #ddd8cc; font-family: system-ui, sans-serif; font-size: 0.9rem; }
nav.toc h2 { font-size: 1rem; margin: 0 0 0.8rem; } nav.toc h2 a { color: inherit; text-decoration: none; }
nav.toc ol { padding-left: 0; list-style: none; margin: 0; } nav.toc li { margin: 0.15rem 0; }
nav.toc a { color: #2a4d7a; text-decoration: none; display: block; padding: 0.2rem 0.4rem; border-radius: 4px; }
nav.toc a:hover { background: #e4e0d5; } nav.toc li.current a { background: #2a4d7a; color: white; }
nav.toc span.missing { color: #999; padding: 0.2rem 0.4rem; display: block; }
main { margin-left: 16rem; padding: 1.5rem 3rem 4rem; max-width: 62rem; }
.pager { display: flex; justify-content: space-between; font-family: system-ui, sans-serif; font-size: 0.9rem;
  margin: 0.5rem 0 1.5rem; } .pager a { color: #2a4d7a; text-decoration: none; }
h1, h2, h3 { font-family: system-ui, sans-serif; line-height: 1.25; } h1 { font-size: 1.9rem; }
h2 { border-bottom: 1px solid #ddd8cc; padding-bottom: 0.2rem; margin-top: 2rem; }
.code { margin: 0.8rem 0; } .input .highlight { background: #f4f4f0; border-left: 3px solid #2a4d7a; padding: 0.1rem 0.8rem;
  overflow-x: auto; font-size: 0.85rem; } .highlight pre { margin: 0.5rem 0; }
pre.output { background: white; border: 1px solid #eee; padding: 0.5rem 0.8rem; font-size: 0.82rem; overflow-x: auto;
  white-space: pre-wrap; margin: 0.3rem 0; } pre.error { background: #fff0f0; color: #a00; }
.record { font-family: system-ui, sans-serif; font-size: 0.8rem; color: #555; margin: 0.1rem 0; }
details.solution { border: 1px solid #c9d6e8; border-radius: 6px; padding: 0.3rem 0.8rem; margin: 0.8rem 0; background: #f5f8fc; }
details.solution > summary { cursor: pointer; font-family: system-ui, sans-serif; color: #2a4d7a; font-weight: 600; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.7em; text-align: left; vertical-align: top; }
th { background: #f1efe9; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; } .failed, .interrupted, .cancelled { color: #c62828; } .error { font-family: monospace; font-size: 0.85em; }
math[display="block"] { margin: 0.8rem 0; font-size: 1.1em; } code.tex { color: #7a2a4d; }
section.results { margin-top: 3rem; } img.output { max-width: 100%; }
"""


def _book_page(title: str, body: str, nav: str, head: str = "") -> str:
    from pygments.formatters import HtmlFormatter

    css = _BOOK_STYLE + HtmlFormatter().get_style_defs(".highlight")
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n"
            f"<meta name=\"generator\" content=\"{BOOK_MARKER}\" />\n"
            f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n{head}</head>\n"
            f"<body>\n{nav}\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def _nav(chapters, current: int | None) -> str:
    items = []
    for i, (stem, title, has_page) in enumerate(chapters):
        label = html.escape(title)
        if has_page:
            cls = ' class="current"' if i == current else ""
            items.append(f'<li{cls}><a href="{html.escape(stem)}.html">{label}</a></li>')
        else:
            items.append(f'<li><span class="missing">{label} (not run)</span></li>')
    return (f'<nav class="toc"><h2><a href="index.html">Contents</a></h2>\n<ol>\n' + "\n".join(items)
            + "\n</ol></nav>")


def _pager(chapters, current: int) -> str:
    pages = [i for i, c in enumerate(chapters) if c[2]]
    at = pages.index(current)
    link = lambda i, arrow: (f'<a href="{html.escape(chapters[i][0])}.html">{arrow}</a>')
    prev = link(pages[at - 1], "← " + html.escape(chapters[pages[at - 1]][1])) if at > 0 else \
        '<a href="index.html">← Contents</a>'
    nxt = link(pages[at + 1], html.escape(chapters[pages[at + 1]][1]) + " →") if at + 1 < len(pages) else ""
    return f'<div class="pager"><span class="prev">{prev}</span><span class="next">{nxt}</span></div>'


def _records_table(records: dict) -> str:
    if not records:
        return ""
    def cell(value):    # a dict shows one entry per line; nothing is cut off
        if isinstance(value, dict):
            return "<br>".join(f"{html.escape(str(k))}: {html.escape(_format_value(v, 10_000))}"
                               for k, v in value.items())
        return html.escape(_format_value(value, 10_000))

    rows = "\n".join(f"<tr><td><code>{html.escape(str(k))}</code></td><td>{cell(v)}</td></tr>"
                     for k, v in records.items())
    return (f'<section class="results"><h2>Recorded results</h2>\n<p>What this run reported with '
            f'<code>lk.record</code>.</p>\n<table>\n<tr><th>name</th><th>value</th></tr>\n{rows}\n</table></section>')


def chapter_html(notebook, chapters, index: int, records: dict | None = None) -> str:
    """The book page of one executed notebook: sidebar, pager, cells (solutions collapsed, math as
    MathML, plotly figures drawn by the shared plotly.min.js) and a table of its recorded results."""
    import nbformat

    nb = nbformat.read(os.fspath(notebook), as_version=4)
    parts, found = [], {}
    for cell in nb.cells:
        text, got = _cell_html(cell)
        parts.append(text)
        found.update(got)
    pager = _pager(chapters, index)
    body = pager + "\n" + "\n".join(parts) + "\n" + _records_table(records if records else found) + "\n" + pager
    head = f'<script src="{PLOTLY_JS}" charset="utf-8"></script>\n'
    return _book_page(chapters[index][1], body, _nav(chapters, index), head)


def write_html_report(executed_notebooks, out_dir, summary, title: str = "labkit course") -> Path:
    """Write the course as a small offline book: a page per executed notebook and ``index.html``
    (contents: each chapter's status, time and recorded results).

    ``summary`` holds one row per notebook, in the same order as ``executed_notebooks``: dicts
    with ``status``, ``seconds``, ``records`` and ``error`` (the rows ``labkit run`` writes to
    summary.json). A notebook whose executed copy is missing gets a row but no page.
    Returns the path of index.html.
    """
    executed_notebooks = [Path(p) for p in executed_notebooks]
    summary = list(summary)
    if len(summary) != len(executed_notebooks):
        raise ValueError(f"summary has {len(summary)} rows but {len(executed_notebooks)} notebooks "
                         f"were given; pass one row per notebook, in the same order")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plotly_js(out_dir)
    chapters = [(nb.stem, chapter_title(nb) if nb.exists() else nb.stem, nb.exists()) for nb in executed_notebooks]
    for i, (notebook, row) in enumerate(zip(executed_notebooks, summary)):
        if notebook.exists():
            page = chapter_html(notebook, chapters, i, row.get("records"))
            (out_dir / f"{notebook.stem}.html").write_text(page, encoding="utf-8")

    lines = []
    for notebook, row, (stem, chapter, has_page) in zip(executed_notebooks, summary, chapters):
        name = html.escape(notebook.stem)
        if has_page:
            name = f'<a href="{html.escape(stem)}.html">{name}</a>'
        results = "<br>".join(f"{html.escape(k)} = {html.escape(_format_value(v))}"
                              for k, v in row.get("records", {}).items())
        status = html.escape(row.get("status", ""))
        lines.append(f'<tr><td>{name}</td><td>{html.escape(chapter)}</td><td class="{status}">{status}</td>'
                     f'<td class="num">{row.get("seconds", 0):.1f}</td><td>{results}</td>'
                     f'<td class="error">{html.escape(row.get("error", ""))}</td></tr>')
    table = ("<table>\n<tr><th>notebook</th><th>chapter</th><th>status</th><th>seconds</th>"
             "<th>recorded results</th><th>error</th></tr>\n" + "\n".join(lines) + "\n</table>")
    body = (f"<h1>{html.escape(title)}</h1>\n<p>The course as executed by <code>labkit run</code>: each "
            f"chapter with its figures and outputs; solutions are folded away until you open them.</p>\n"
            + table)
    index = out_dir / "index.html"
    index.write_text(_book_page(title, body, _nav(chapters, None)), encoding="utf-8")
    return index


# ---------------------------------------------------------------------------------------------
# Sweeps


def _number(value):
    """The value as a float for plotting, or None (bools and non-numbers are not plotted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _is_numeric(values) -> bool:
    return all(_number(v) is not None for v in values)


def sweep_figure(rows: list[dict], grid: dict, metric: str):
    """A plotly figure of ``metric`` over the swept parameters: a heatmap for two, a line
    (or bars, for non-numeric values) for one, parallel coordinates for more."""
    import plotly.graph_objects as go

    swept = [k for k, values in grid.items() if len(values) > 1] or list(grid)[:1]
    # Failed runs leave a gap rather than a value that might be half-way through training.
    scores = [_number(r["records"].get(metric)) if r["status"] == "ok" else None for r in rows]
    title = f"{metric} ({Path(rows[0]['notebook']).name})" if rows else metric

    if len(swept) == 2:
        (py, ys), (px, xs) = ((k, grid[k]) for k in swept)
        z = [[None] * len(xs) for _ in ys]
        text = [[""] * len(xs) for _ in ys]
        for row, score in zip(rows, scores):
            i, j = ys.index(row["parameters"][py]), xs.index(row["parameters"][px])
            z[i][j] = score
            text[i][j] = f"{score:.4g}" if score is not None else row["status"]
        # Category axes space the values evenly (learning rates are usually log-spaced).
        fig = go.Figure(go.Heatmap(z=z, x=[str(v) for v in xs], y=[str(v) for v in ys], text=text,
                                   texttemplate="%{text}", colorscale="Viridis",
                                   colorbar={"title": {"text": metric}},
                                   hovertemplate=f"{px}=%{{x}}<br>{py}=%{{y}}<br>{metric}=%{{z}}"
                                                 "<extra></extra>"))
        fig.update_layout(xaxis={"title": {"text": px}, "type": "category"},
                          yaxis={"title": {"text": py}, "type": "category"})
    elif len(swept) == 1:
        (name,) = swept
        xs = [r["parameters"][name] for r in rows]
        if _is_numeric(xs):
            fig = go.Figure(go.Scatter(x=xs, y=scores, mode="lines+markers", name=metric))
            positive = [x for x in xs if x > 0]
            if len(positive) == len(xs) and max(xs) >= 100 * min(xs):
                fig.update_xaxes(type="log")
        else:
            fig = go.Figure(go.Bar(x=[str(x) for x in xs], y=scores, name=metric))
        fig.update_layout(xaxis_title=name, yaxis_title=metric)
    else:
        keep = [i for i, s in enumerate(scores) if s is not None]
        dims = []
        for name in swept:
            values = [rows[i]["parameters"][name] for i in keep]
            if _is_numeric(grid[name]):
                dims.append({"label": name, "values": values})
            else:  # categories become integer codes, labelled with their values
                labels = [str(v) for v in grid[name]]
                dims.append({"label": name, "values": [labels.index(str(v)) for v in values],
                             "tickvals": list(range(len(labels))), "ticktext": labels})
        values = [scores[i] for i in keep]
        dims.append({"label": metric, "values": values})
        fig = go.Figure(go.Parcoords(dimensions=dims,
                                     line={"color": values, "colorscale": "Viridis", "showscale": True}))
    fig.update_layout(title={"text": title}, template="plotly_white")
    return fig


def write_sweep_html(path, rows: list[dict], grid: dict, metric: str | None) -> str | None:
    """Write ``summary.html`` for a sweep: the figure (plotly.js embedded, works offline) and a
    table of every run. Returns None, or a message saying why there is no figure."""
    problem = None
    recorded = list(dict.fromkeys(k for r in rows for k in r["records"]))
    if metric is None:
        problem = "no run recorded a value (lk.record), so summary.html has no figure"
    elif metric not in recorded:
        problem = (f"metric {metric!r} was not recorded by any run; recorded: "
                   f"{', '.join(recorded) or 'nothing'}")
    elif all(_number(r["records"].get(metric)) is None for r in rows if r["status"] == "ok"):
        problem = f"metric {metric!r} has no numeric value in a successful run, so it cannot be plotted"

    figure_html = ""
    if problem is None:
        figure_html = sweep_figure(rows, grid, metric).to_html(full_html=False, include_plotlyjs=True)
    else:
        figure_html = f"<p><strong>No figure:</strong> {html.escape(problem)}</p>"

    names = list(grid)
    header = names + recorded + ["status", "seconds", "error", "notebook"]
    lines = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for r in rows:
        cells = [html.escape(_format_value(r["parameters"].get(k, ""))) for k in names]
        cells += [html.escape(_format_value(r["records"][k])) if k in r["records"] else ""
                  for k in recorded]
        output = Path(r["output"])
        link = f'<a href="{html.escape(output.name)}">{html.escape(output.name)}</a>' \
            if output.exists() else ""
        cells += [f'<span class="{html.escape(r["status"])}">{html.escape(r["status"])}</span>',
                  f'{r["seconds"]:.1f}', f'<span class="error">{html.escape(r["error"])}</span>', link]
        lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = "<table>\n" + "\n".join(lines) + "\n</table>"
    title = f"labkit sweep: {Path(rows[0]['notebook']).name}" if rows else "labkit sweep"
    Path(path).write_text(_page(title, figure_html + "\n<h2>Runs</h2>\n" + table), encoding="utf-8")
    return problem
