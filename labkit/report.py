"""HTML reports for ``labkit run --html`` and ``labkit sweep``; they work offline.

Executed notebooks become pages with nbconvert's lab template. labkit's figures are saved in a
notebook as plotly JSON (mimetype ``application/vnd.plotly.v1+json``) with no HTML, which
nbconvert cannot draw by itself, so ``PlotlyToHTML`` turns each into a ``<div>`` plus a
``Plotly.newPlot`` call, and every page loads one shared ``plotly.min.js`` written next to it.
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


def _load_plotly_js(page: str) -> str:
    # Loaded before the template's require.js: with require.js present, plotly.js would register
    # as an AMD module instead of setting the global Plotly that the snippets call.
    tag = f'<script src="{PLOTLY_JS}" charset="utf-8"></script>'
    match = re.search(r"<meta charset[^>]*>", page) or re.search(r"<head[^>]*>", page)
    if match is None:
        return tag + page
    return page[: match.end()] + "\n" + tag + page[match.end():]


def write_plotly_js(out_dir) -> Path:
    """Write the installed plotly.js into ``out_dir``, one copy shared by every page."""
    from plotly.offline import get_plotlyjs

    path = Path(out_dir) / PLOTLY_JS
    path.write_text(get_plotlyjs(), encoding="utf-8")  # rewritten: must match the installed plotly
    return path


def notebook_to_html(notebook, out_path) -> Path:
    """Convert one executed notebook into an HTML page that loads ``plotly.min.js`` beside it."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.register_preprocessor(PlotlyToHTML(), enabled=True)
    body, _ = exporter.from_filename(os.fspath(notebook))
    out_path = Path(out_path)
    out_path.write_text(_load_plotly_js(body), encoding="utf-8")
    return out_path


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        return text if len(text) <= 80 else text[:77] + "..."
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


def write_html_report(executed_notebooks, out_dir, summary) -> Path:
    """Write an HTML page per executed notebook and an ``index.html`` linking them.

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

    lines = []
    for notebook, row in zip(executed_notebooks, summary):
        name = html.escape(notebook.stem)
        if notebook.exists():
            page = notebook_to_html(notebook, out_dir / f"{notebook.stem}.html")
            name = f'<a href="{html.escape(page.name)}">{name}</a>'
        results = "<br>".join(f"{html.escape(k)} = {html.escape(_format_value(v))}"
                              for k, v in row.get("records", {}).items())
        status = html.escape(row.get("status", ""))
        lines.append(f'<tr><td>{name}</td><td class="{status}">{status}</td>'
                     f'<td class="num">{row.get("seconds", 0):.1f}</td><td>{results}</td>'
                     f'<td class="error">{html.escape(row.get("error", ""))}</td></tr>')
    table = ("<table>\n<tr><th>notebook</th><th>status</th><th>seconds</th>"
             "<th>recorded results</th><th>error</th></tr>\n" + "\n".join(lines) + "\n</table>")
    index = out_dir / "index.html"
    index.write_text(_page("labkit run", table), encoding="utf-8")
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
