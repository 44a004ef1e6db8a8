"""``scale calibrate``: how well each difficulty source predicts where System 1 fails.

- ``labels``: the labelling runs (all-System-1 and all-System-2 per dev problem, resumable);
- ``metrics``: AUROC with bootstrap intervals, the gain-recovery curve G(r);
- ``fit``: the learned source's logistic fit and its out-of-fold scores;
- ``report``: every source's numbers and the terminal table; ``plot``: the G(r) figure;
- ``run``: ``calibrate``, the library function behind the command.
"""

from optimize.calibration.run import CalibrationRun, calibrate

__all__ = ["CalibrationRun", "calibrate"]
