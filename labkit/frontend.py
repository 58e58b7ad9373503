"""Where is this code running? "live" (JupyterLab or another live notebook front end), "headless"
(papermill, nbconvert, nbval: a kernel with nobody watching) or "script" (plain Python).

LivePlot, ProgressBar and ControlPanel use this to update in place when someone is watching,
and to leave one small static result in a saved notebook when nobody is.
Set LABKIT_FRONTEND=live|headless|script to override the guess.
"""
from __future__ import annotations

import os

MODES = ("live", "headless", "script")


_seen_live = False     # a live front end answered before: threads it started see it too


def frontend() -> str:
    global _seen_live
    forced = os.environ.get("LABKIT_FRONTEND", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"LABKIT_FRONTEND={forced!r} is not one of {MODES}")
        return forced
    try:
        from IPython import get_ipython
    except ImportError:
        return "script"
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return "script"                  # plain python, or a terminal IPython
    try:
        parent = kernel.get_parent("shell") or {}
    except Exception:                    # e.g. a thread with no request of its own
        parent = {}
    msg_type = (parent.get("header") or {}).get("msg_type", "")
    metadata = parent.get("metadata") or {}
    # JupyterLab, Notebook 7 and VS Code send the cell's id with each execute request, and only a
    # front end with widgets sends comm messages (a button click); papermill, nbconvert and nbval
    # (nbclient/jupyter_client) send neither.
    if "cellId" in metadata or "deletedCells" in metadata or msg_type.startswith("comm_"):
        _seen_live = True
        return "live"
    if msg_type == "execute_request":
        return "headless"
    return "live" if _seen_live else "headless"
