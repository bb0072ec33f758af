"""The fenced blocks and ``fedsearch`` commands of the README and of every page of ``docs/``.

A block is read as the site shows it: indented fences (inside an admonition)
count, and a ``--8<-- "path"`` line (pymdownx.snippets) is replaced by the
file it includes, relative to the repository root.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO

README = REPO / "README.md"
DOC_FILES = [README, *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.S | re.M)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$', re.M)


@dataclass(frozen=True)
class Block:
    """A fenced block of a Markdown file (``path`` relative to the repository)."""

    language: str
    text: str
    path: str
    line: int

    @property
    def toml(self) -> dict[str, Any]:
        return tomllib.loads(self.text)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def expand_includes(text: str) -> str:
    """The text with each snippet include replaced by the included file."""
    return INCLUDE.sub(lambda match: (REPO / match[1]).read_text().rstrip("\n"), text)


def file_blocks(path: Path) -> list[Block]:
    source = path.read_text()
    return [
        Block(
            match[2],
            expand_includes(textwrap.dedent(match[3])),
            path.relative_to(REPO).as_posix(),
            source[: match.start()].count("\n") + 1,
        )
        for match in FENCE.finditer(source)
    ]


def doc_blocks(language: str | None = None, files: list[Path] | None = None) -> list[Block]:
    """The blocks of ``files`` (default: the README and docs/*.md) in ``language``."""
    found = [block for path in files or DOC_FILES for block in file_blocks(path)]
    return [block for block in found if language is None or block.language == language]


@dataclass(frozen=True)
class Command:
    """A ``fedsearch ...`` command line shown in a block (comments dropped)."""

    text: str
    path: str

    @property
    def args(self) -> list[str]:
        return self.text.split()[1:]


def doc_commands(files: list[Path] | None = None) -> list[Command]:
    """Every ``fedsearch`` command line of the blocks of ``files``."""
    commands = []
    for block in doc_blocks(files=files):
        text = block.text.replace("\\\n", " ")
        for line in text.splitlines():
            for part in line.split("&&"):
                command = " ".join(part.split("#")[0].split())
                error = re.match(r"fedsearch( \w+)?: ", command)  # an error line, shown
                if command.startswith("fedsearch ") and not error:
                    commands.append(Command(command, block.path))
    return commands


def snippet(predicate: Any) -> Block:
    """The one toml block of the README and docs whose parsed content satisfies ``predicate``."""
    (block,) = [block for block in doc_blocks("toml") if predicate(block.toml)]
    return block


def text_block(marker: str, language: str | None = None) -> Block:
    """The first block (of ``language``) that contains ``marker``."""
    return next(block for block in doc_blocks(language) if marker in block.text)


def load_hooks() -> Any:
    """The docs site's hook module (docs/_hooks/reference.py), which generates the references."""
    spec = importlib.util.spec_from_file_location("reference", REPO / "docs/_hooks/reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
