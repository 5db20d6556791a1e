"""Back-compatible names of the study machinery, which lives in `jaxcim.studies` (one module per study type).

``from jaxcim.study import load_study, run_mvm, StudyError`` keeps working; new code imports from
`jaxcim.studies`, `jaxcim.studies.mvm`, `jaxcim.io` and `jaxcim.progress`.
"""

from __future__ import annotations

from jaxcim.io import (
    StudyError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    prepare_output,
    read_toml,
)
from jaxcim.progress import Progress, format_time
from jaxcim.studies.base import (
    DEFAULT_STUDY,
    MAX_INSTANCES,
    MAX_SEED,
    MAX_SIZE,
    STUDY_TYPES,
    StudyType,
    default_study_path,
    embedded_studies,
    embedded_study_path,
    load_study,
    resolve_study,
)
from jaxcim.studies.mvm import MVM_DEFAULTS, check_mvm, fingerprint, mvm_data, run_mvm, table

__all__ = [
    "DEFAULT_STUDY", "MAX_INSTANCES", "MAX_SEED", "MAX_SIZE", "MVM_DEFAULTS", "STUDY_TYPES", "Progress",
    "StudyError", "StudyType", "atomic_write_bytes", "atomic_write_json", "atomic_write_npz", "check_mvm",
    "default_study_path", "embedded_studies", "embedded_study_path", "fingerprint", "format_time", "load_study",
    "mvm_data", "prepare_output", "read_toml", "resolve_study", "run_mvm", "table",
]
