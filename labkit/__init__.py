"""labkit: an interactive deep-learning lab for JupyterLab, on PyTorch.

    import labkit as lk
    data = lk.data.digits(batch_size=64)
    trainer = lk.Trainer(lk.models.MLP(64, [128], 10), loss="cross_entropy", metrics=["accuracy"],
                         callbacks=[lk.LivePlot(), lk.EarlyStopping(patience=5)])
    trainer.fit(data, epochs=20)

Every name below is imported when it is first used (``lk.Trainer`` imports labkit.train, and
torch with it; ``lk.LivePlot`` imports plotly), so ``import labkit`` and the ``labkit`` command
start at once and a notebook pays only for what it uses.
"""
from __future__ import annotations

import importlib
import os
import sys
import types

__version__ = "0.1.0"

# name -> the labkit module that defines it (a name mapped to None is a submodule itself)
_LAZY = {
    "data": None, "deploy": None, "models": None, "viz": None,
    "Callback": "callbacks", "Checkpoint": "callbacks", "DivergenceGuard": "callbacks",
    "DivergenceWarning": "callbacks", "EarlyStopping": "callbacks", "LRSchedule": "callbacks",
    "ProgressBar": "callbacks",
    "describe": "device", "pick_device": "device", "seed_everything": "device",
    "frontend": "frontend",
    "check_params": "hparams", "quick_default": "hparams",
    "lr_find": "lr_find",
    "LivePlot": "plots", "history_figure": "plots", "show": "plots", "use_small_renderer": "plots",
    "record": "record", "records": "record",
    "History": "train", "Trainer": "train",
    "ControlPanel": "widgets",
    "check": "exercises",
    "set_language": "i18n", "get_language": "i18n",
    "prep": None, "diagrams": None,
    "LayerStats": "layerstats", "Playground": "playground",
}

__all__ = [
    "Trainer", "History", "Callback", "EarlyStopping", "Checkpoint", "LRSchedule", "DivergenceGuard",
    "DivergenceWarning", "ProgressBar", "LivePlot", "ControlPanel", "record", "records",
    "seed_everything", "pick_device", "describe", "frontend", "check_params", "quick_default", "show",
    "history_figure", "lr_find", "data", "deploy", "models", "viz",
    "check",
    "set_language",
    "get_language",
    "prep",
    "diagrams",
    "LayerStats",
    "Playground",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    where = _LAZY[name]
    if where is None:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    # a lazy name may share its name with its module (frontend, lr_find, record): the function wins
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """Importing a submodule binds it on its package (``labkit.record = <module>``); where a
    function has its module's name (record, frontend, lr_find), ``lk.NAME`` stays the function."""

    def __setattr__(self, name, value):
        if (isinstance(value, types.ModuleType) and _LAZY.get(name) == name
                and value.__name__ == f"{__name__}.{name}" and hasattr(value, name)):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


# -- plotly's renderer -------------------------------------------------------------------------
# Inside a kernel, `fig.show()` should emit plotly's JSON mimetype alone, so saved notebooks stay
# small (labkit.plots.use_small_renderer). Importing plotly costs ~0.3 s, so instead of importing
# it here, the renderer is set when plotly.io is first imported, by whoever imports it.
def _set_small_renderer(pio) -> None:
    from .frontend import frontend

    try:
        if frontend() != "script":
            pio.renderers.default = "plotly_mimetype"
    except Exception:       # never let a renderer preference break someone's import of plotly
        pass


class _AfterPlotlyIO:
    """A meta-path finder that runs _set_small_renderer right after plotly.io is imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "plotly.io":
            return None
        from importlib.machinery import PathFinder

        if self in sys.meta_path:
            sys.meta_path.remove(self)          # once: the real finders take it from here
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                _set_small_renderer(module)

        spec.loader = Loader()
        return spec


def _install_renderer_hook() -> None:
    if "plotly.io" in sys.modules:
        _set_small_renderer(sys.modules["plotly.io"])
    elif "ipykernel" in sys.modules or os.environ.get("LABKIT_FRONTEND"):   # a plain script: nothing to do
        if not any(isinstance(f, _AfterPlotlyIO) for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterPlotlyIO())


_install_renderer_hook()
