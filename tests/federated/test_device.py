"""The study's ``device``: validated, resolved (GPU routing tested with a mocked CUDA)."""

from __future__ import annotations

import logging

import pydantic
import pytest
import torch

from fedsearch import ConfigError
from fedsearch.cli._main import main
from fedsearch.config import StudyConfig
from fedsearch.federated import LocalTrainer, resolve_device
from fedsearch.federated._device import worker_devices
from fedsearch.federated._parallel import default_start_method, parallel_state
from tests.conftest import TINY_STUDY, write_tiny_study

from .test_execution import mlp


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``count`` CUDA GPUs."""

    def pretend(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return pretend


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "CPU", "cuda0", ""])
def test_the_config_accepts_only_auto_cpu_cuda_and_cuda_n(value):
    with pytest.raises(pydantic.ValidationError, match="device"):
        StudyConfig(name="s", device=value)
    for good in ("auto", "cpu", "cuda", "cuda:1"):
        assert StudyConfig(name="s", device=good).device == good


def test_auto_falls_back_to_the_cpu_and_says_so(gpus, caplog):
    gpus(0)
    with caplog.at_level(logging.INFO, logger="fedsearch"):
        assert resolve_device("auto") == torch.device("cpu")
    assert [r.getMessage() for r in caplog.records] == [
        "device = 'auto': no CUDA GPU available, running on the CPU"
    ]
    gpus(2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_an_explicit_gpu_that_is_not_there_is_a_config_error(gpus):
    gpus(0)
    with pytest.raises(ConfigError, match="no CUDA GPU is available") as raised:
        resolve_device("cuda", source="study.toml")
    assert str(raised.value).startswith("study.toml: device: device = 'cuda'")
    gpus(2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="has 2 GPU"):
        resolve_device("cuda:2")


def test_workers_spread_over_the_gpus(gpus):
    gpus(2)
    cuda = [device.index for device in worker_devices(torch.device("cuda"), 5)]
    assert cuda == [0, 1, 0, 1, 0]
    assert worker_devices(torch.device("cuda", 1), 3) == [torch.device("cuda", 1)] * 3
    assert worker_devices(torch.device("cpu"), 2) == [torch.device("cpu")] * 2


def test_gpu_workers_are_spawned_and_auto_trains_clients_on_them():
    assert default_start_method(torch.device("cuda", 0)) == "spawn"
    assert default_start_method(torch.device("cpu")) == "fork"

    def trainer(device):
        inputs, labels = torch.randn(8, 1, 4, 4), torch.zeros(8, dtype=torch.long)
        generator = torch.Generator()
        return LocalTrainer(
            mlp(),
            inputs,
            labels,
            [],
            local_epochs=1,
            batch_size=4,
            learning_rate=0.1,
            generator=generator,
            device=device,
        )

    round_batches = [[torch.arange(4)], [torch.arange(4, 8)]]
    assert parallel_state(trainer(torch.device("cpu")), round_batches) is None  # tiny work
    assert parallel_state(trainer(torch.device("cuda")), round_batches) is not None


def test_run_refuses_a_missing_gpu_before_storing_anything(tmp_path, capsys, gpus):
    gpus(0)
    study = write_tiny_study(tmp_path, TINY_STUDY.replace("seed = 0", 'seed = 0\ndevice = "cuda"'))
    for command in ("run", "validate"):
        assert main([command, str(study)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fedsearch: error: ")
        assert "device" in lines[0] and 'set device = "cpu" or "auto"' in lines[0]
    assert not (tmp_path / "runs").exists()


def test_run_says_once_that_auto_fell_back_to_the_cpu(tiny_study, capsys, gpus):
    gpus(0)
    assert main(["run", str(tiny_study), "--n-trials", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("device = 'auto': no CUDA GPU available, running on the CPU") == 1
