"""MkDocs hook: reference pages generated from the code, so they cannot drift from it.

A page writes a marker on a line of its own and the hook replaces it:

- ``<!-- fedsearch:readme -->``: the README, its ``docs/`` links made relative to
  the site (the home page is the README, included rather than copied).
- ``<!-- fedsearch:cli -->``: every ``fedsearch`` command's ``--help``, taken from
  the argparse parser the console script uses (``fedsearch.cli._main.build_parser``).
- ``<!-- fedsearch:schema StudyConfig SearchSpaceConfig -->``: one table per
  model of the configuration, from the pydantic models' JSON schema
  (``model_json_schema``), descriptions from the fields' docstrings.

Registered in ``mkdocs.yml`` under ``hooks``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fedsearch import config as config_models
from fedsearch.cli._main import build_parser

README_MARKER = re.compile(r"^<!-- fedsearch:readme -->$", re.M)
CLI_MARKER = re.compile(r"^<!-- fedsearch:cli -->$", re.M)
SCHEMA_MARKER = re.compile(r"^<!-- fedsearch:schema ([\w ]+) -->$", re.M)
HELP_COLUMNS = "88"  # argparse wraps --help at $COLUMNS


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the markers of a page with the generated reference."""
    markdown = README_MARKER.sub(lambda _: readme(config["config_file_path"]), markdown)
    markdown = CLI_MARKER.sub(lambda _: cli_reference(), markdown)
    return SCHEMA_MARKER.sub(lambda match: schema_reference(*match[1].split()), markdown)


def readme(config_file: str) -> str:
    """The README beside ``mkdocs.yml``, its links into ``docs/`` relative to the site."""
    text = (Path(config_file).parent / "README.md").read_text()
    return text.replace("](docs/", "](")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _help_text(parser: argparse.ArgumentParser) -> str:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        return parser.format_help().rstrip()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def cli_reference() -> str:
    """Markdown: ``fedsearch --help``, then one section per subcommand with its ``--help``."""
    parser = build_parser()
    parts = ["## fedsearch", "", "```text", _help_text(parser), "```", ""]
    for name, sub in _subcommands(parser).items():
        parts += [f"## fedsearch {name}", "", "```text", _help_text(sub), "```", ""]
    return "\n".join(parts)


def _type_of(schema: dict[str, Any]) -> str:
    """A short type name of a JSON-schema node (``int``, ``list of ComponentRef`` ...)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type_of(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " / ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"table of {_type_of(schema['additionalProperties'])}"
    return {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}.get(kind, kind)


LIMITS = {
    "minimum": ">=",
    "exclusiveMinimum": ">",
    "maximum": "<=",
    "exclusiveMaximum": "<",
    "pattern": "matches",
}


def _limits(schema: dict[str, Any]) -> str:
    found = [f"{sign} `{schema[key]}`" for key, sign in LIMITS.items() if key in schema]
    for option in schema.get("anyOf", []):
        found += [f"{sign} `{option[key]}`" for key, sign in LIMITS.items() if key in option]
    return ", ".join(found)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(model: type[BaseModel] | None, field: str, node: dict[str, Any]) -> str:
    """The field's default as TOML-ish JSON; a nested table's defaults are in its own table."""
    info = model.model_fields.get(field) if model is not None else None
    if info is not None:
        if info.is_required():
            return "required"
        value = info.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            return "its fields' defaults"
        return f"`{json.dumps(value)}`"
    return f"`{json.dumps(node.get('default'))}`"


def _model_table(name: str, schema: dict[str, Any]) -> list[str]:
    model = getattr(config_models, name, None)
    required = set(schema.get("required", []))
    rows = [
        f"### {name}",
        "",
        _cell(schema.get("description", "")),
        "",
        "| field | type | default | limits | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for field, node in schema.get("properties", {}).items():
        default = "required" if field in required else _default(model, field, node)
        rows.append(
            f"| `{field}` | {_cell(_type_of(node))} | {_cell(default)} | {_cell(_limits(node))} "
            f"| {_cell(node.get('description', ''))} |"
        )
    return [*rows, ""]


def schema_reference(*model_names: str) -> str:
    """Markdown: each model's table, then one table per model they refer to (once each)."""
    models: dict[str, dict[str, Any]] = {}
    referred: dict[str, dict[str, Any]] = {}
    for name in model_names:
        schema = getattr(config_models, name).model_json_schema()
        models[name] = schema
        referred |= schema.get("$defs", {})
    parts = []
    for name, node in [*models.items(), *sorted(referred.items())]:
        if name not in models or node is models[name]:
            parts += _model_table(name, node)
    return "\n".join(parts)
