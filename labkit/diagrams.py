"""Textbook diagrams drawn with plotly: a convolution window sliding, an unrolled RNN, an LSTM cell,
a Transformer block, ring all-reduce. Each function returns a ``plotly.graph_objects.Figure``;
a notebook shows it with ``lk.show(fig)``.

The animated ones (convolution, all-reduce) compute what they show: the output values are the
real convolution of the drawn input and kernel, and the all-reduce frames are a step-by-step
simulation of the ring algorithm on the drawn gradients.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .hparams import check_int

BLUE, ORANGE, GREEN, GREY, RED, PURPLE = "#3b6ea8", "#e08a2c", "#4e9a5b", "#8a8a8a", "#c0392b", "#7b59a6"
FILL = {BLUE: "#dbe7f5", ORANGE: "#fbe7d1", GREEN: "#dcefdf", GREY: "#eeeeee", RED: "#f6d8d4", PURPLE: "#e7def2"}


def _canvas(title: str, width: float, height: float, px_width: int = 760, px_height: int = 420) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title={"text": title}, width=px_width, height=px_height, template="plotly_white",
                      showlegend=False, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(range=[0, width], visible=False, fixedrange=True),
                      yaxis=dict(range=[0, height], visible=False, fixedrange=True, scaleanchor="x"))
    return fig


def _box(fig, x0, y0, x1, y1, text="", color=BLUE, size=13, round_=False):
    kind = "circle" if round_ else "rect"
    fig.add_shape(type=kind, x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=color, width=2),
                  fillcolor=FILL.get(color, "white"), layer="below")
    if text:
        fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2, text=text, showarrow=False,
                           font=dict(size=size, color="#222"))


def _arrow(fig, x0, y0, x1, y1, text="", color=GREY, dx=0.0, dy=0.0, size=11):
    """An arrow from (x0, y0) to (x1, y1), optionally labelled near its middle."""
    fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="",
                       showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.8, arrowcolor=color)
    if text:
        fig.add_annotation(x=(x0 + x1) / 2 + dx, y=(y0 + y1) / 2 + dy, text=text, showarrow=False,
                           font=dict(size=size, color=color))


def _line(fig, points, color=GREY, width=1.8):
    xs, ys = zip(*points)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=width), hoverinfo="skip"))


# -- convolution -----------------------------------------------------------------------------------

def convolution(size: int = 6, kernel_size: int = 3, seed: int = 0) -> go.Figure:
    """A ``kernel_size`` window sliding over a ``size``x``size`` input (stride 1, no padding); each
    frame shows the window, the products it sums, and the output value it writes.
    Press play or drag the slider."""
    check_int("size", size, minimum=2, maximum=12)
    check_int("kernel_size", kernel_size, minimum=1, maximum=size)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(size, size))
    k = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]]) if kernel_size == 3 else rng.integers(-1, 2, (kernel_size,) * 2)
    n_out = size - kernel_size + 1
    out = np.array([[int((x[i:i + kernel_size, j:j + kernel_size] * k).sum()) for j in range(n_out)]
                    for i in range(n_out)])
    gap = 1.5
    kx0, ox0 = size + gap, size + gap + kernel_size + gap          # left edges of kernel and output grids
    top = size + 0.9
    width, height = ox0 + n_out + 0.5, size + 2.0
    fig = _canvas(f"Convolution: a {kernel_size}×{kernel_size} kernel slides over a {size}×{size} input "
                  f"→ {n_out}×{n_out} output", width, height, px_width=820, px_height=440)

    def grid(x0, values, color, done=None):
        # one heatmap per grid (cells centred on integer + 0.5), numbers as its text: small to store
        rows, cols = values.shape
        filled = np.ones((rows, cols)) if done is None else done
        return go.Heatmap(x=x0 + np.arange(cols) + 0.5, y=top - np.arange(rows) - 0.5, z=filled,
                          text=values, texttemplate="%{text}", zmin=0, zmax=1, showscale=False, xgap=2, ygap=2,
                          colorscale=[[0, "white"], [1, FILL[color]]], hoverinfo="skip")

    def output_grid(f):
        shown = np.array([[out[i, j] if i * n_out + j <= f else "" for j in range(n_out)] for i in range(n_out)],
                         dtype=object)
        done = np.array([[1.0 if i * n_out + j <= f else 0.0 for j in range(n_out)] for i in range(n_out)])
        return grid(ox0, shown, BLUE, done)

    fig.add_trace(grid(0, x, GREY))
    fig.add_trace(grid(kx0, k, ORANGE))
    fig.add_trace(output_grid(-1))
    for x0, cols, label in ((0, size, "input x"), (kx0, kernel_size, "kernel w"), (ox0, n_out, "output y = x ⋆ w")):
        fig.add_annotation(x=x0 + cols / 2, y=top + 0.45, text=label, showarrow=False, font=dict(size=13))
    fig.add_shape(type="rect", x0=ox0, y0=top - n_out, x1=ox0 + n_out, y1=top, line=dict(color=BLUE, width=1.5))
    labels = list(fig.layout.annotations)
    frames, steps = [], []
    for f, (i, j) in enumerate((i, j) for i in range(n_out) for j in range(n_out)):
        shapes = [dict(type="rect", x0=ox0, y0=top - n_out, x1=ox0 + n_out, y1=top, line=dict(color=BLUE, width=1.5)),
                  dict(type="rect", x0=j, y0=top - i - kernel_size, x1=j + kernel_size, y1=top - i,
                       line=dict(color=RED, width=4)),
                  dict(type="rect", x0=ox0 + j, y0=top - i - 1, x1=ox0 + j + 1, y1=top - i, line=dict(color=RED, width=4))]
        terms = " + ".join(f"{x[i + a, j + b]}·{k[a, b]}" if k[a, b] >= 0 else f"{x[i + a, j + b]}·({k[a, b]})"
                           for a in range(kernel_size) for b in range(kernel_size))
        formula = dict(x=width / 2, y=0.35, showarrow=False, font=dict(size=12),
                       text=f"y[{i},{j}] = {terms} = <b>{out[i, j]}</b>")
        frames.append(go.Frame(name=str(f), data=[output_grid(f)], traces=[2],
                               layout=go.Layout(shapes=shapes, annotations=labels + [formula])))
        steps.append(dict(method="animate", label=f"({i},{j})",
                          args=[[str(f)], dict(mode="immediate", frame=dict(duration=0, redraw=True))]))
    fig.frames = frames
    fig.data[2].update(frames[0].data[0])
    fig.update_layout(shapes=frames[0].layout.shapes, annotations=frames[0].layout.annotations)
    fig.update_layout(
        sliders=[dict(steps=steps, active=0, x=0.1, len=0.9, y=0, currentvalue=dict(prefix="window at "))],
        updatemenus=[dict(type="buttons", x=0.0, y=0, xanchor="left", yanchor="top", showactive=False,
                          buttons=[dict(label="▶", method="animate",
                                        args=[None, dict(frame=dict(duration=600, redraw=True), fromcurrent=True)])])],
        margin=dict(l=10, r=10, t=50, b=70))
    fig.layout.meta = {"output": out.tolist(), "input": x.tolist(), "kernel": k.tolist()}
    return fig


# -- recurrent networks ----------------------------------------------------------------------------

def unrolled_rnn(steps: int = 4) -> go.Figure:
    """An RNN folded (one cell with a loop) and unrolled over ``steps`` time steps: the same weights
    W_xh, W_hh, W_hy at every step; the hidden state h carries information forward."""
    check_int("steps", steps, minimum=2, maximum=8)
    width, height = 3.2 + 2.2 * steps + 0.4, 6.0
    fig = _canvas(f"An RNN, folded and unrolled over {steps} steps (the same weights at every step)",
                  width, height, px_width=900, px_height=420)
    # folded
    _box(fig, 0.6, 2.5, 1.8, 3.5, "h", BLUE)
    _box(fig, 0.6, 0.4, 1.8, 1.3, "x<sub>t</sub>", GREY)
    _box(fig, 0.6, 4.7, 1.8, 5.6, "y<sub>t</sub>", GREEN)
    _arrow(fig, 1.2, 1.3, 1.2, 2.5, "W<sub>xh</sub>", dx=-0.45)
    _arrow(fig, 1.2, 3.5, 1.2, 4.7, "W<sub>hy</sub>", dx=-0.45)
    _line(fig, [(1.8, 3.2), (2.3, 3.2), (2.3, 3.95), (1.0, 3.95), (1.0, 3.5)], color=RED)
    fig.add_annotation(x=2.35, y=3.95, text="W<sub>hh</sub>", showarrow=False, xanchor="left",
                       font=dict(size=11, color=RED))
    fig.add_annotation(x=2.9, y=3.0, text="= unroll →", showarrow=False, font=dict(size=13))
    x0 = 3.6
    _box(fig, x0, 2.5, x0 + 0.9, 3.5, "h<sub>0</sub>", GREY)
    for t in range(1, steps + 1):
        cx = x0 + 2.2 * t - 0.3
        _box(fig, cx - 0.6, 2.5, cx + 0.6, 3.5, f"h<sub>{t}</sub>", BLUE)
        _box(fig, cx - 0.6, 0.4, cx + 0.6, 1.3, f"x<sub>{t}</sub>", GREY)
        _box(fig, cx - 0.6, 4.7, cx + 0.6, 5.6, f"y<sub>{t}</sub>", GREEN)
        _arrow(fig, cx, 1.3, cx, 2.5, "W<sub>xh</sub>", dx=-0.45)
        _arrow(fig, cx, 3.5, cx, 4.7, "W<sub>hy</sub>", dx=-0.45)
        prev_right = x0 + 0.9 if t == 1 else cx - 2.2 + 0.6
        _arrow(fig, prev_right, 3.0, cx - 0.6, 3.0, "W<sub>hh</sub>", color=RED, dy=0.25)
    fig.add_annotation(x=(x0 + width) / 2, y=0.05, showarrow=False, font=dict(size=12),
                       text="h<sub>t</sub> = tanh(W<sub>xh</sub> x<sub>t</sub> + W<sub>hh</sub> h<sub>t−1</sub> + b)"
                            ",   y<sub>t</sub> = W<sub>hy</sub> h<sub>t</sub>")
    return fig


def lstm_cell() -> go.Figure:
    """One LSTM cell: the forget, input and output gates (σ), the candidate (tanh), and the cell
    state c running along the top, changed only by a multiply and an add."""
    width, height = 12.0, 7.6
    fig = _canvas("An LSTM cell: gates decide what the cell state c forgets, adds and shows", width, height,
                  px_width=820, px_height=520)
    _box(fig, 1.4, 0.9, 10.6, 6.1, "", GREY)
    top, gate_y = 5.3, 2.1
    # the cell state line
    _arrow(fig, 0.2, top, 3.05, top, "c<sub>t−1</sub>", color=RED, dy=0.3)
    _box(fig, 3.05, top - 0.35, 3.75, top + 0.35, "×", RED, round_=True)
    _arrow(fig, 3.75, top, 6.05, top, color=RED)
    _box(fig, 6.05, top - 0.35, 6.75, top + 0.35, "+", RED, round_=True)
    _arrow(fig, 6.75, top, 11.8, top, "c<sub>t</sub>", color=RED, dx=2.2, dy=0.3)
    # the hidden state and input enter at the bottom
    _line(fig, [(0.2, 1.3), (9.0, 1.3)])
    fig.add_annotation(x=0.25, y=1.55, text="h<sub>t−1</sub>", showarrow=False, xanchor="left")
    _arrow(fig, 1.9, 0.1, 1.9, 1.3)
    fig.add_annotation(x=2.05, y=0.25, text="x<sub>t</sub>", showarrow=False, xanchor="left")
    gates = [(3.4, "σ", "forget f<sub>t</sub>", ORANGE), (5.0, "σ", "input i<sub>t</sub>", ORANGE),
             (6.4, "tanh", "candidate c̃<sub>t</sub>", PURPLE), (8.6, "σ", "output o<sub>t</sub>", ORANGE)]
    for x, op, label, color in gates:
        _arrow(fig, x, 1.3, x, gate_y - 0.35, color=GREY)
        _box(fig, x - 0.45, gate_y - 0.35, x + 0.45, gate_y + 0.35, op, color, size=12)
        fig.add_annotation(x=x, y=0.65, text=label, showarrow=False, font=dict(size=10, color=color))
    _arrow(fig, 3.4, gate_y + 0.35, 3.4, top - 0.35, color=ORANGE)                      # f -> x c
    _box(fig, 5.35, 3.45, 6.05, 4.15, "×", PURPLE, round_=True)                          # i * c~
    _line(fig, [(5.0, gate_y + 0.35), (5.0, 3.8), (5.35, 3.8)], color=ORANGE)
    _line(fig, [(6.4, gate_y + 0.35), (6.4, 3.1), (5.7, 3.1), (5.7, 3.45)], color=PURPLE)
    _arrow(fig, 5.7, 4.15, 6.4, top - 0.35, color=PURPLE)                              # -> +
    # output: h_t = o * tanh(c_t)
    _line(fig, [(7.6, top), (7.6, 4.55)], color=RED)
    _box(fig, 7.15, 3.85, 8.05, 4.55, "tanh", PURPLE, size=11)
    _box(fig, 8.95, 3.85, 9.65, 4.55, "×", PURPLE, round_=True)
    _line(fig, [(8.05, 4.2), (8.95, 4.2)], color=PURPLE)
    _line(fig, [(8.6, gate_y + 0.35), (8.6, 3.5), (9.3, 3.5), (9.3, 3.85)], color=ORANGE)
    _line(fig, [(9.65, 4.2), (10.2, 4.2), (10.2, 1.3)], color=BLUE)
    _arrow(fig, 10.2, 1.3, 11.8, 1.3, "h<sub>t</sub>", color=BLUE, dy=0.25)
    _arrow(fig, 10.2, 4.2, 10.2, 7.2, "h<sub>t</sub>", color=BLUE, dx=0.35)
    fig.add_annotation(x=6.0, y=6.75, showarrow=False, font=dict(size=11),
                       text="c<sub>t</sub> = f<sub>t</sub>⊙c<sub>t−1</sub> + i<sub>t</sub>⊙c̃<sub>t</sub>,"
                            "   h<sub>t</sub> = o<sub>t</sub>⊙tanh(c<sub>t</sub>);  each gate: "
                            "σ(W[h<sub>t−1</sub>, x<sub>t</sub>] + b)")
    return fig


# -- Transformer -----------------------------------------------------------------------------------

def transformer_block(pre_norm: bool = True) -> go.Figure:
    """A (decoder) Transformer block as labkit's GPT builds it: LayerNorm before each sublayer
    (``pre_norm=True``; the original 2017 block normalizes after the residual add), causal
    multi-head self-attention, an MLP, and a residual connection around each."""
    width, height = 10.0, 11.0
    fig = _canvas("A Transformer block (" + ("pre-LayerNorm, as in GPT-2 and labkit's GPT" if pre_norm
                                             else "post-LayerNorm, as in the 2017 paper") + ")",
                  width, height, px_width=620, px_height=680)
    cx = 4.2
    _box(fig, cx - 1.8, 0.3, cx + 1.8, 1.1, "token embedding + position", GREY, size=12)
    _box(fig, 1.4, 1.7, 7.0, 9.5, "", GREY)
    fig.add_annotation(x=7.1, y=9.3, text="× N blocks", showarrow=False, xanchor="left", font=dict(size=13))
    layers = ([("LayerNorm", GREEN), ("masked multi-head<br>self-attention", ORANGE), ("+", RED),
               ("LayerNorm", GREEN), ("MLP (4× wider, GELU)", BLUE), ("+", RED)] if pre_norm else
              [("masked multi-head<br>self-attention", ORANGE), ("+", RED), ("LayerNorm", GREEN),
               ("MLP (4× wider, GELU)", BLUE), ("+", RED), ("LayerNorm", GREEN)])
    y, centers = 2.2, []
    for name, color in layers:
        h = 0.7 if name == "+" else (1.1 if "<br>" in name else 0.8)
        if name == "+":
            _box(fig, cx - 0.35, y, cx + 0.35, y + h, "+", RED, round_=True)
        else:
            _box(fig, cx - 1.6, y, cx + 1.6, y + h, name, color, size=12)
        centers.append((name, y, y + h))
        y += h + 0.45
    _arrow(fig, cx, 1.1, cx, centers[0][1])
    for (_, _, top), (_, bottom, _) in zip(centers, centers[1:]):
        _arrow(fig, cx, top, cx, bottom)
    _box(fig, cx - 1.6, 10.05, cx + 1.6, 10.8, "LayerNorm → linear → softmax", GREY, size=11)
    _arrow(fig, cx, centers[-1][2], cx, 10.05)
    # residual paths: from before each sublayer around to its "+"
    plus = [i for i, (n, _, _) in enumerate(centers) if n == "+"]
    starts = [centers[0][1] - 0.2, centers[plus[0]][2] + 0.2]
    for start, i in zip(starts, plus):
        mid = (centers[i][1] + centers[i][2]) / 2
        _line(fig, [(cx, start), (cx - 2.4, start), (cx - 2.4, mid)], color=RED)
        _arrow(fig, cx - 2.4, mid, cx - 0.35, mid, color=RED)
    fig.add_annotation(x=cx - 2.5, y=(starts[0] + centers[plus[0]][1]) / 2, text="residual", textangle=-90,
                       showarrow=False, font=dict(size=11, color=RED))
    fig.add_annotation(x=8.5, y=5.0, showarrow=False, align="left", font=dict(size=11),
                       text="attention:<br>softmax(QKᵀ/√d<sub>k</sub> + mask) V<br>per head, d<sub>k</sub> = d/h;"
                            "<br>heads concatenated,<br>then projected")
    return fig


# -- data parallelism ------------------------------------------------------------------------------

def ring_allreduce_steps(gradients) -> list[np.ndarray]:
    """Simulate ring all-reduce on ``gradients`` [workers, chunks] (one chunk per worker): the state
    after each of the 2(n-1) steps (n-1 reduce-scatter steps, then n-1 all-gather steps).
    The last state holds the sum of all rows in every row."""
    g = np.array(gradients, dtype=float)
    n = g.shape[0]
    if g.ndim != 2 or g.shape[1] != n or n < 2:
        raise ValueError(f"gradients must have shape [n, n] with n >= 2 (a chunk per worker), got {g.shape}")
    states = [g.copy()]
    for s in range(n - 1):                       # reduce-scatter: worker r sends chunk (r - s) to r + 1
        new = g.copy()
        for r in range(n):
            c = (r - s) % n
            new[(r + 1) % n, c] = g[(r + 1) % n, c] + g[r, c]
        g = new
        states.append(g.copy())
    for s in range(n - 1):                       # all-gather: worker r passes its complete chunk on
        new = g.copy()
        for r in range(n):
            c = (r + 1 - s) % n
            new[(r + 1) % n, c] = g[r, c]
        g = new
        states.append(g.copy())
    return states


def all_reduce(workers: int = 4, seed: int = 0) -> go.Figure:
    """Data parallelism: each of ``workers`` processes computes a gradient on its own shard of the
    batch; ring all-reduce sums them so every worker ends with the same total (divided by the
    number of workers: the mean) and takes the same step. Each frame is one step of the ring:
    every worker sends one chunk to its neighbour at once. Rows: workers; columns: gradient chunks."""
    check_int("workers", workers, minimum=2, maximum=8)
    rng = np.random.default_rng(seed)
    grads = rng.integers(1, 10, size=(workers, workers))
    states = ring_allreduce_steps(grads)
    names = [f"worker {r}" for r in range(workers)]
    chunks = [f"chunk {c}" for c in range(workers)]
    total = grads.sum(0)

    def heat(state, s):
        done = (state == total[None, :]).astype(float)
        return go.Heatmap(z=done[::-1], x=chunks, y=names[::-1], text=state[::-1].astype(int),
                          texttemplate="%{text}", colorscale=[[0, "#eeeeee"], [1, "#9cc8a4"]], zmin=0, zmax=1,
                          showscale=False, hovertemplate="%{y}, %{x}: %{text}<extra></extra>")

    labels = ["each worker's own gradient"] + \
             [f"reduce-scatter {s + 1}/{workers - 1}: pass a chunk on, add it" for s in range(workers - 1)] + \
             [f"all-gather {s + 1}/{workers - 1}: pass the finished sums on" for s in range(workers - 1)]
    fig = go.Figure(heat(states[0], 0))
    fig.frames = [go.Frame(data=[heat(st, s)], name=str(s), layout=go.Layout(title={"text": f"Ring all-reduce, "
                  f"step {s}/{len(states) - 1}: {labels[s]}"})) for s, st in enumerate(states)]
    steps = [dict(method="animate", label=str(s), args=[[str(s)], dict(mode="immediate", frame=dict(duration=0, redraw=True))])
             for s in range(len(states))]
    fig.update_layout(
        title={"text": f"Ring all-reduce, step 0/{len(states) - 1}: {labels[0]}"}, template="plotly_white",
        width=720, height=470, margin=dict(l=10, r=10, t=60, b=150),
        sliders=[dict(steps=steps, active=0, x=0.1, len=0.9, y=-0.05, currentvalue=dict(prefix="step "))],
        updatemenus=[dict(type="buttons", x=0.0, y=-0.05, xanchor="left", yanchor="top", showactive=False,
                          buttons=[dict(label="▶", method="animate",
                                        args=[None, dict(frame=dict(duration=900, redraw=True), fromcurrent=True)])])],
        annotations=[dict(x=0.5, y=-0.62, xref="paper", yref="paper", showarrow=False, font=dict(size=11),
                          text=f"green: the chunk holds the sum over all {workers} workers. "
                               f"{2 * (workers - 1)} steps; each worker sends 2(n−1)/n of a gradient in all,<br>"
                               f"whatever n is. Then every worker divides by {workers} and steps.")])
    fig.layout.meta = {"gradients": grads.tolist(), "sum": total.tolist()}
    return fig
