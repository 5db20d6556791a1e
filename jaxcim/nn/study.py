"""Back-compatible names of the ``classifier`` study, which lives in `jaxcim.studies.classifier`."""

from __future__ import annotations

from jaxcim.studies.classifier import (
    CLASSIFIER_DEFAULTS,
    DEFAULT_TIMES,
    MODEL_NAMES,
    accuracy_plot,
    check_classifier,
    run_classifier_study,
)

__all__ = ["CLASSIFIER_DEFAULTS", "DEFAULT_TIMES", "MODEL_NAMES", "accuracy_plot", "check_classifier",
           "run_classifier_study"]
