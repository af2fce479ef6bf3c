"""Training: strategy choice, precision, optimizer and schedule, `model.fit` with callbacks."""

from tfmm.train.fit import fit, make_optimizer
from tfmm.train.precision import set_precision
from tfmm.train.strategy import choose_strategy, is_chief

__all__ = ["choose_strategy", "fit", "is_chief", "make_optimizer", "set_precision"]
