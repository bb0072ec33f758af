"""Your own data without a plugin: ``npz`` arrays and an ``image_folder``, through a study."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from fedsearch import ConfigError, get_registry
from fedsearch.cli._main import main
from tests.conftest import TINY_SPACE, TINY_STUDY, write_tiny_study

NUM_WRITERS = 6


def digits(count: int = 900) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` digits as uint8 pixels (N, 1, 8, 8) and labels."""
    bunch = load_digits()
    pixels = np.round(bunch.images[:count] * 255 / 16).astype(np.uint8)
    return pixels[:, None], bunch.target[:count].astype(np.int64)


def own_data_study(
    folder: Path, dataset: str, partition: str = "iid", num_clients: int = 4
) -> Path:
    """The tiny study on ``dataset`` (a TOML snippet, braces doubled), one trial."""
    study = TINY_STUDY.replace("n_trials = 3", "n_trials = 1").replace('name = "digits"', dataset)
    study = study.replace("num_clients = 4", f"num_clients = {num_clients}")
    federation = f'[federation]\npartition = {{{{ name = "{partition}" }}}}\n'
    return write_tiny_study(folder, study.replace("[federation]\n", federation), TINY_SPACE)


def run_one_trial(study_file: Path) -> optuna.trial.FrozenTrial:
    assert main(["run", str(study_file)]) == 0
    storage = f"sqlite:///{study_file.parent / 'runs' / 'fedsearch.db'}"
    (trial,) = optuna.load_study(study_name="tiny", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    return trial


def test_npz_dataset_with_natural_clients_runs_through_a_study(tmp_path):
    x, y = digits()
    np.savez(tmp_path / "train.npz", x=x[:700], y=y[:700])
    np.savez(tmp_path / "test.npz", x=x[700:], y=y[700:])
    writers = [f"writer-{index % NUM_WRITERS}" for index in range(700)]
    (tmp_path / "clients.txt").write_text("\n".join(writers) + "\n")
    params = (f'path = "{tmp_path / "train.npz"}", test_path = "{tmp_path / "test.npz"}", '
              f'clients_file = "{tmp_path / "clients.txt"}"')  # fmt: skip
    dataset = f'name = "npz"\nparams = {{{{ {params} }}}}'
    trial = run_one_trial(own_data_study(tmp_path, dataset, "natural", NUM_WRITERS))
    partition = trial.user_attrs["partition"]
    assert partition["clients"] == NUM_WRITERS
    # every client is one writer: the 85% training share of that writer's examples
    assert partition["examples"] == 700 - round(0.2 * 700)
    assert partition["max_examples"] - partition["min_examples"] <= 12
    assert trial.values[0] > 0.25  # val accuracy well above chance (0.1) after 3 rounds

    splits = get_registry().create("dataset", "npz", {"path": str(tmp_path / "train.npz"),
        "test_path": str(tmp_path / "test.npz"),
        "clients_file": str(tmp_path / "clients.txt")}).load()  # fmt: skip
    assert torch.equal(splits.test_inputs, torch.from_numpy(x[700:]).float() / 255)
    assert torch.equal(splits.train_labels, torch.from_numpy(y[:700]))
    assert splits.num_classes == 10
    assert np.array_equal(splits.train_groups, np.arange(700) % NUM_WRITERS)


def write_image_folder(root: Path, pixels: np.ndarray, labels: np.ndarray) -> list[str]:
    names = []
    for index, (image, label) in enumerate(zip(pixels[:, 0], labels, strict=True)):
        (root / f"digit{label}").mkdir(parents=True, exist_ok=True)
        name = f"digit{label}/{index:04d}.png"
        Image.fromarray(image, mode="L").save(root / name)
        names.append(name)
    return names


def test_image_folder_dataset_runs_through_a_study(tmp_path):
    x, y = digits(600)
    names = write_image_folder(tmp_path / "images", x, y)
    dataset = (f'name = "image_folder"\nparams = {{{{ root = "{tmp_path / "images"}", '
               'mode = "L", test_fraction = 0.25 }}')  # fmt: skip
    trial = run_one_trial(own_data_study(tmp_path, dataset))
    assert trial.values[0] > 0.25
    assert trial.user_attrs["partition"]["clients"] == 4

    splits = get_registry().create("dataset", "image_folder", {
        "root": str(tmp_path / "images"), "mode": "L"}).load()  # fmt: skip
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10
    assert len(splits.train_labels) + len(splits.test_labels) == 600
    # Pixels come back exactly, each image with the label of its folder (digit0..digit9 = 0..9).
    labels_of: dict[bytes, set[int]] = {}
    for image, label in zip(x, y, strict=True):
        labels_of.setdefault(image.tobytes(), set()).add(int(label))
    loaded = (splits.train_inputs * 255).round().to(torch.uint8).numpy()
    for image, label in zip(loaded, splits.train_labels.tolist(), strict=True):
        assert label in labels_of[image.tobytes()]

    (tmp_path / "clients.csv").write_text(
        "".join(f"{n},site{i % 3}\n" for i, n in enumerate(names))
    )
    rgb = get_registry().create("dataset", "image_folder", {
        "root": str(tmp_path / "images"), "size": [12, 10],
        "clients_file": str(tmp_path / "clients.csv")}).load()  # fmt: skip
    assert rgb.input_shape == (3, 12, 10)
    assert sorted(np.unique(rgb.train_groups)) == [0, 1, 2]


def load(name: str, **params) -> None:
    get_registry().create("dataset", name, params).load()


def bad_npz_cases(folder: Path) -> list[tuple[str, dict, str, str]]:
    x, y = digits(20)
    np.savez(folder / "no_y.npz", x=x)
    np.savez(folder / "short.npz", x=x, y=y[:10])
    np.savez(folder / "good.npz", x=x, y=y)
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object))
    (folder / "pickled.npz").write_bytes(pickle.dumps({"x": x, "y": y}))
    (folder / "three.txt").write_text("a\nb\nc\n")
    return [
        ("missing", {"path": str(folder / "nope.npz")}, "path", "not an existing file"),
        ("unset", {}, "path", "set it"),
        ("no y", {"path": str(folder / "no_y.npz")}, "path", "no array 'y'"),
        ("lengths", {"path": str(folder / "short.npz")}, "path", "x has 20 examples and y 10"),
        ("pickle", {"path": str(folder / "pickled.npz")}, "path", "not a readable .npz"),
        ("clients", {"path": str(folder / "good.npz"), "clients_file": str(folder / "three.txt")},
         "clients_file", "names 3 clients but there are 20"),
    ]  # fmt: skip


def test_bad_npz_files_are_one_line_config_errors(tmp_path):
    for case, params, field, expected in bad_npz_cases(tmp_path):
        with pytest.raises(ConfigError, match=expected) as caught:
            load("npz", **params)
        assert caught.value.field == f"dataset.params.{field}", case
        assert "\n" not in str(caught.value)


def test_bad_image_folders_are_one_line_config_errors(tmp_path):
    x, y = digits(10)
    write_image_folder(tmp_path / "ok", x, y)
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "ok" / "digit0" / "big.png")
    with pytest.raises(ConfigError, match=r"set dataset.params.size") as caught:
        load("image_folder", root=str(tmp_path / "ok"))
    assert caught.value.field == "dataset.params.size"
    (tmp_path / "ok" / "digit0" / "big.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="is not a readable image"):
        load("image_folder", root=str(tmp_path / "ok"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no class sub-folders"):
        load("image_folder", root=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="not an existing folder"):
        load("image_folder", root=str(tmp_path / "nowhere"))


def test_a_bad_dataset_file_stops_the_cli_with_one_line(tmp_path, capsys):
    dataset = f'name = "npz"\nparams = {{{{ path = "{tmp_path / "missing.npz"}" }}}}'
    assert main(["run", str(own_data_study(tmp_path, dataset))]) == 2
    error = capsys.readouterr().err.strip()
    assert "dataset.params.path" in error and "missing.npz" in error and "\n" not in error
