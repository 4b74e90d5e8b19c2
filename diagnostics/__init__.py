"""Pure analysis over recorded traces and sweep results: one module per concern, each with a figure.

``diagnostics.assess(sweep_dir)`` judges every hypothesis of the log; the modules below it are usable on
their own: ``io`` (read a sweep), ``gates``, ``attention``, ``anchors``, ``gradients``, ``losses``,
``calibration``, ``ablation`` (paired effects, waterfall), ``design`` (designed effects: ``diagnostics.effects``)
and ``verdicts``.
"""
from diagnostics.design import effects
from diagnostics.io import Sweep, SweepError, load_sweep
from diagnostics.verdicts import Assessment, assess

__all__ = ["Assessment", "Sweep", "SweepError", "assess", "effects", "load_sweep"]
