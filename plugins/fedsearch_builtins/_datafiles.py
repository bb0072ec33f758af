"""Finding, verifying and (when asked) downloading dataset files."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from fedsearch import ConfigError

DATA_DIR_ENV = "FEDSEARCH_DATA_DIR"
"""Environment variable naming a folder that holds one sub-folder per dataset."""

DOWNLOAD_TIMEOUT_S = 60


def md5_of(path: Path) -> str:
    """Hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def candidate_folders(root: str | None, subdir: str) -> list[Path]:
    """Folders that may hold a dataset, most specific first.

    ``root`` (the dataset's ``root`` param) may name the dataset folder itself
    or its parent; ``$FEDSEARCH_DATA_DIR`` names the parent.
    """
    folders: list[Path] = []
    if root is not None:
        folders += [Path(root).expanduser(), Path(root).expanduser() / subdir]
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        folders.append(Path(env).expanduser() / subdir)
    return folders


def find_folder(
    dataset: str, root: str | None, subdir: str, required: Sequence[str]
) -> Path | None:
    """The first candidate folder holding every ``required`` file, or None."""
    for folder in candidate_folders(root, subdir):
        if all((folder / name).is_file() for name in required):
            return folder
    return None


def missing_files_error(
    dataset: str, root: str | None, subdir: str, required: Sequence[str], hint: str
) -> ConfigError:
    """The error that says which files to put where."""
    looked = ", ".join(str(folder) for folder in candidate_folders(root, subdir)) or "nowhere"
    return ConfigError(
        f"{dataset} files not found (looked in: {looked}); put {', '.join(required)} in a "
        f"folder and set dataset.params.root to it (or set ${DATA_DIR_ENV} to a folder with a "
        f"'{subdir}/' sub-folder); {hint}",
        field="dataset.params.root",
    )


def verify_checksums(dataset: str, folder: Path, expected: Mapping[str, str]) -> None:
    """Raise a ``ConfigError`` naming the first file whose MD5 differs from ``expected``."""
    for name, md5 in expected.items():
        actual = md5_of(folder / name)
        if actual != md5.lower():
            raise ConfigError(
                f"{dataset} file {folder / name} is corrupt or not the published file "
                f"(md5 {actual}, expected {md5}); replace it with the original, or set "
                "dataset.params.verify = false to skip the check",
                field="dataset.params.verify",
            )


def download_files(dataset: str, folder: Path, urls: Mapping[str, str]) -> None:
    """Download each ``name: url`` into ``folder``; a ``ConfigError`` if unreachable."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, url in urls.items():
        target = folder / name
        if target.is_file():
            continue
        partial = target.with_suffix(target.suffix + ".part")
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
                partial.open("wb") as stream,
            ):
                shutil.copyfileobj(response, stream)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise ConfigError(
                f"could not download {dataset} file {name} from {url} ({error}); download it "
                f"yourself into {folder} and set dataset.params.download = false",
                field="dataset.params.download",
            ) from error
        partial.replace(target)


def locate(
    dataset: str,
    *,
    root: str | None,
    subdir: str,
    required: Sequence[str],
    download: bool,
    urls: Mapping[str, str],
    hint: str,
) -> Path:
    """The folder holding ``required``, downloading into it first when asked and possible."""
    folder = find_folder(dataset, root, subdir, required)
    if folder is not None:
        return folder
    if download and urls:
        candidates = candidate_folders(root, subdir)
        if not candidates:
            raise ConfigError(
                f"dataset.params.download = true but there is no folder to download {dataset} "
                f"into; set dataset.params.root or ${DATA_DIR_ENV}",
                field="dataset.params.root",
            )
        target = candidates[0] if root is None else Path(root).expanduser()
        download_files(dataset, target, urls)
        return target
    raise missing_files_error(dataset, root, subdir, required, hint)
