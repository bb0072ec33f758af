"""The generated reference pages of the docs site (docs/_hooks/reference.py)."""

from __future__ import annotations

import re

from pydantic import BaseModel

from fedsearch import config
from tests._docs import load_hooks
from tests.conftest import REPO


def nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for info in model.model_fields.values():
        for candidate in re.findall(r"\w+", str(info.annotation)):
            nested = getattr(config, candidate, None)
            if isinstance(nested, type) and issubclass(nested, BaseModel) and nested not in found:
                found |= nested_models(nested)
    return found


def test_schema_reference_has_a_row_for_every_field_of_every_model():
    page = load_hooks().schema_reference("StudyConfig", "SearchSpaceConfig")
    models = nested_models(config.StudyConfig) | nested_models(config.SearchSpaceConfig)
    assert config.FederationConfig in models and config.DimensionConfig in models
    for model in models:
        section = page.split(f"### {model.__name__}\n", 1)[1].split("\n### ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in section, f"{model.__name__}.{name}"
    assert page.count("### DimensionConfig\n") == 1  # shared models once
    assert "| `rounds` | int | `10` | >= `1` |" in page  # type, default and limits


def test_schema_reference_shows_field_docstrings():
    page = load_hooks().schema_reference("StudyConfig")
    assert "Seeds numpy, torch, scikit-learn and the sampler" in page


def test_readme_is_the_home_page_with_site_links(tmp_path):
    (tmp_path / "README.md").write_text("see [the tour](docs/tour.md)\n")
    text = load_hooks().readme(str(tmp_path / "mkdocs.yml"))
    assert text == "see [the tour](tour.md)\n"
    assert (REPO / "docs" / "index.md").read_text().strip() == "<!-- fedsearch:readme -->"
