"""Reading TOML files into validated models, with one-line errors."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from fedsearch._errors import ConfigError
from fedsearch.config._models import SearchSpaceConfig, StudyConfig
from fedsearch.host import validation_message

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_toml(path: Path) -> dict:
    """Parse a TOML file, turning I/O and syntax problems into ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found; check the path (study files live in studies/)", source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the file ({error})", source=str(path)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"malformed TOML: {error}; fix the syntax at that line", source=str(path)
        ) from None


def validate_model(model: type[ModelT], data: dict, source: str) -> ModelT:
    """Validate ``data`` against ``model``, reporting the first problem as a ``ConfigError``."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _config_error(model, error, source) from None


def _config_error(model: type[BaseModel], error: ValidationError, source: str) -> ConfigError:
    problem = error.errors()[0]
    location = [str(part) for part in problem["loc"]]
    field = ".".join(location)
    if problem["type"] == "extra_forbidden":
        allowed = _allowed_fields(model, location[:-1])
        close = difflib.get_close_matches(location[-1], allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        message = f"unknown field; {hint}allowed here: {', '.join(allowed) or 'none'}"
    elif problem["type"] == "missing":
        message = "required field is missing; add it"
    else:
        message = f"{validation_message(problem)} (got {problem.get('input')!r})"
    return ConfigError(message, source=source, field=field)


def _allowed_fields(model: type[BaseModel], location: list[str]) -> list[str]:
    """Field names of the (nested) model at ``location``; [] where it is a free mapping."""
    current: type[BaseModel] | None = model
    for part in location:
        field = current.model_fields.get(part) if current else None
        annotation = field.annotation if field else None
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return sorted(current.model_fields) if current else []


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study file."""
    path = Path(path)
    return validate_model(StudyConfig, read_toml(path), str(path))


def load_search_space_config(path: str | Path) -> SearchSpaceConfig:
    """Read and validate a search-space file."""
    path = Path(path)
    return validate_model(SearchSpaceConfig, read_toml(path), str(path))
