"""Studies: the long-running jobs behind ``jaxcim run`` and ``jaxcim sweep``, read from TOML files.

A study file names its type (``study = "mvm"``, ``"classifier"``), its keys at the top level and the crossbar
under ``[crossbar]`` (a `jaxcim.CrossbarConfig`, also readable with ``jc.load_config("study.toml")``). Each type
lives in a module of this package and registers itself here with `register`:

- `jaxcim.studies.mvm`: relative matrix-vector-product error across device instances and read times;
- `jaxcim.studies.classifier`: a digits classifier trained, fine-tuned hardware-aware and evaluated on chips.

`jaxcim.studies.sweep` runs an mvm study over a grid of config values (``jaxcim sweep``) and
`jaxcim.studies.optimize` learns a mapping for an mvm study's weights (``jaxcim optimize``). Shipped studies are
package data (``jaxcim/studies/NAME.toml``), run by name: ``jaxcim run mvm``. Every study writes the same
``results.json`` schema (`jaxcim.studies.results`).

A study type of your own::

    from jaxcim import studies

    def run(study, cfg, out, *, resume=False, progress=True, log=None): ...   # -> results dict

    studies.register("my-study", studies.StudyType(defaults={"study": "my-study", "name": "x", "instances": 1,
                                                            "times": [1.0]}, run=run))
"""

from jaxcim.studies import classifier, mvm  # the shipped study types register themselves
from jaxcim.studies.base import (
    DEFAULT_STUDY,
    MAX_INSTANCES,
    MAX_SEED,
    MAX_SIZE,
    STUDY_TYPES,
    StudyError,
    StudyType,
    as_study_error,
    crossbar,
    default_study_path,
    embedded_studies,
    embedded_study_path,
    is_embedded,
    load_study,
    register,
    resolve_study,
)

__all__ = [
    "DEFAULT_STUDY", "MAX_INSTANCES", "MAX_SEED", "MAX_SIZE", "STUDY_TYPES", "StudyError", "StudyType",
    "as_study_error", "classifier", "crossbar", "default_study_path", "embedded_studies", "embedded_study_path",
    "is_embedded", "load_study", "mvm", "register", "resolve_study",
]
