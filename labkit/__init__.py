"""labkit: an interactive deep-learning lab for JupyterLab, on PyTorch.

    import labkit as lk
    data = lk.data.digits(batch_size=64)
    trainer = lk.Trainer(lk.models.MLP(64, [128], 10), loss="cross_entropy", metrics=["accuracy"],
                         callbacks=[lk.LivePlot(), lk.EarlyStopping(patience=5)])
    trainer.fit(data, epochs=20)
"""
from . import data, deploy, models, viz
from .callbacks import (Callback, Checkpoint, DivergenceGuard, DivergenceWarning, EarlyStopping,
                        LRSchedule, ProgressBar)
from .device import describe, pick_device, seed_everything
from .frontend import frontend
from .hparams import check_params, quick_default
from .lr_find import lr_find
from .plots import LivePlot, history_figure, show, use_small_renderer
from .record import record, records
from .train import History, Trainer
from .widgets import ControlPanel
from .layerstats import LayerStats
from .playground import Playground

__version__ = "0.1.0"

use_small_renderer()

__all__ = [
    "Trainer", "History", "Callback", "EarlyStopping", "Checkpoint", "LRSchedule", "DivergenceGuard",
    "DivergenceWarning", "ProgressBar", "LivePlot", "ControlPanel", "record", "records",
    "seed_everything", "pick_device", "describe", "frontend", "check_params", "quick_default", "show",
    "history_figure", "lr_find", "data", "deploy", "models", "viz",
    "LayerStats",
    "Playground",
]
