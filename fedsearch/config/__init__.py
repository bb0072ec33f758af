"""Study and search-space files: models and loading."""

from __future__ import annotations

from fedsearch.config._loading import load_search_space_config, load_study_config
from fedsearch.config._models import (
    DEFAULT_OUTPUT_DIR,
    ComponentRef,
    ConstraintsConfig,
    DatasetConfig,
    DimensionConfig,
    FederationConfig,
    SearchConfig,
    SearchSpaceConfig,
    StudyConfig,
    TeacherConfig,
    WorkersConfig,
)
from fedsearch.config._tiers import TierConfig, TiersConfig
from fedsearch.config._warm_start import WarmStartConfig

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "ComponentRef",
    "ConstraintsConfig",
    "DatasetConfig",
    "DimensionConfig",
    "FederationConfig",
    "SearchConfig",
    "SearchSpaceConfig",
    "StudyConfig",
    "TeacherConfig",
    "TierConfig",
    "TiersConfig",
    "WarmStartConfig",
    "WorkersConfig",
    "load_search_space_config",
    "load_study_config",
]
