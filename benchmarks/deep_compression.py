"""Deep Compression, federated: LeNet-300-100 and LeNet-5 on MNIST (Han et al. 2016, Table 1).

Recipe, all through fedsearch's public plugins and its federated simulation
(100 clients, IID, C = 0.1, FedAvg):

1. train the dense model federatedly and measure its float32 artifact;
2. continue federatedly with per-layer magnitude pruning on Zhu & Gupta's
   cubic schedule and quantization-aware training (uniform, symmetric),
   masks kept through aggregation;
3. write the compressed artifact (sparse index/bitmap encoding, bit-packed
   codes, LZMA entropy coding), load it back into a model and measure the test
   error of that decoded model.

The size is ``len()`` of the artifact bytes; the error is on the 10,000 MNIST
test images, which training never sees.

    nice -n 10 python benchmarks/deep_compression.py --model lenet_300_100
    nice -n 10 python benchmarks/deep_compression.py --model lenet5
    python benchmarks/deep_compression.py --model lenet_300_100 --quick   # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from fedsearch import (
    CompressionContext,
    build_artifact,
    describe_artifact,
    get_registry,
    load_model,
)
from fedsearch.artifact import ModelSpec
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedRun, accuracy, prepare_federated_data, run_federated

PAPER = {  # Han et al. 2016, Table 1
    "lenet_300_100": {"error_before": 1.64, "error_after": 1.58, "kb_before": 1070, "kb_after": 27,
                      "ratio": 40},
    "lenet5": {"error_before": 0.80, "error_after": 0.74, "kb_before": 1720, "kb_after": 44,
               "ratio": 39},
}  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """Federated settings and compression knobs of one model.

    ``dense_phases`` are ``(rounds, learning_rate)`` steps of the dense training
    (a step-decayed learning rate); compression continues at ``compress_lr``.
    """

    dense_phases: tuple[tuple[int, float], ...]
    compress_rounds: int
    compress_lr: float
    local_epochs: int
    batch_size: int
    prune: dict = field(default_factory=dict)
    quantize: dict = field(default_factory=dict)


RECIPES = {
    "lenet_300_100": Recipe(
        dense_phases=((300, 0.1), (100, 0.03)), compress_rounds=200, compress_lr=0.02,
        local_epochs=1, batch_size=10,
        prune={"sparsity": 0.91, "sparsity_first": 0.93, "sparsity_last": 0.74},
        quantize={"bits": 6, "start_fraction": 0.4},
    ),
    "lenet5": Recipe(
        dense_phases=((100, 0.05), (40, 0.02)), compress_rounds=80, compress_lr=0.02,
        local_epochs=1, batch_size=10,
        prune={"sparsity": 0.93, "sparsity_first": 0.4, "sparsity_last": 0.85},
        quantize={"bits": 5, "start_fraction": 0.5},
    ),
}  # fmt: skip


def hash_of(*parts: object) -> str:
    """Short hash of the dense-training settings (the cache key)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def federation(recipe: Recipe, rounds: int, learning_rate: float) -> FederationConfig:
    """100 clients, IID, C = 0.1."""
    return FederationConfig(
        num_clients=100, rounds=rounds, fraction=0.1, local_epochs=recipe.local_epochs,
        batch_size=recipe.batch_size, learning_rate=learning_rate,
        eval_every=max(1, rounds // 6),
    )  # fmt: skip


def run(name: str, quick: bool, seed: int) -> dict:
    """Train, compress and measure one model; return its figures."""
    registry = get_registry()
    recipe = RECIPES[name]
    if quick:
        recipe = Recipe(((2, 0.1), (1, 0.05)), 4, 0.05, 1, 50, recipe.prune, recipe.quantize)
    splits = registry.create("dataset", "mnist", {}).load()
    data = prepare_federated_data(
        splits, val_fraction=0.05, partitioner=registry.create("partitioner", "iid", {}),
        num_clients=100, seed=seed,
    )  # fmt: skip
    architecture = registry.create("architecture", name, {})
    torch.manual_seed(seed)
    model = architecture.build(data.input_shape, data.num_classes)
    spec = ModelSpec(name, {}, data.input_shape, data.num_classes)

    def federated(rounds: int, learning_rate: float) -> FederatedRun:
        return FederatedRun(
            data=data, federation=federation(recipe, rounds, learning_rate),
            strategy=registry.create("strategy", "fedavg", {}),
            downlink_codec=registry.create("codec", "float32", {}),
            uplink_codec=registry.create("codec", "float32", {}), seed=seed,
        )  # fmt: skip

    def progress(record) -> None:
        if record.val_accuracy is not None:
            print(f"  round {record.round}: val accuracy {record.val_accuracy:.4f}", flush=True)

    started = time.perf_counter()
    dense_comm = 0
    key = hash_of(recipe.dense_phases, recipe.local_epochs, recipe.batch_size)
    cache = Path("runs") / f"dense-{name}-{seed}-{key}.pt"
    if cache.exists() and not quick:  # the dense model of an earlier run with this recipe
        saved = torch.load(cache, weights_only=True)
        model.load_state_dict(saved["weights"])
        dense_comm = saved["comm_bytes"]
        print(f"{name}: dense model from {cache}", flush=True)
    else:
        for rounds, learning_rate in recipe.dense_phases:
            print(f"{name}: dense training, {rounds} rounds at lr {learning_rate}", flush=True)
            phase = run_federated(model, federated(rounds, learning_rate), on_round=progress)
            model.load_state_dict(phase.weights)
            dense_comm += phase.comm_bytes
        if not quick:
            cache.parent.mkdir(exist_ok=True)
            torch.save({"weights": model.state_dict(), "comm_bytes": dense_comm}, cache)
    dense = SimpleNamespace(weights={k: v.clone() for k, v in model.state_dict().items()})
    dense_artifact = build_artifact(spec, dense.weights)
    dense_model = load_model(dense_artifact, registry)
    dense_error = 1 - accuracy(dense_model, data.test_inputs, data.test_labels)
    print(f"  dense: {len(dense_artifact)} bytes, test error {100 * dense_error:.2f}%", flush=True)

    rounds = recipe.compress_rounds
    schedule = {"scope": "layer", "schedule": "gradual", "start_fraction": 0.0}
    schedule["end_fraction"] = recipe.quantize["start_fraction"]  # prune, then QAT
    pruner = registry.create("compressor", "magnitude", schedule | recipe.prune)
    quantizer = registry.create("compressor", "uniform", recipe.quantize)

    for compressor in (pruner, quantizer):
        compressor.setup(CompressionContext(model=model, num_rounds=rounds, teacher=None))
    print(f"{name}: pruning + QAT, {rounds} rounds", flush=True)
    compressed = run_federated(
        model,
        federated(rounds, recipe.compress_lr),
        compressors=[pruner, quantizer],
        on_round=progress,
    )
    artifact = build_artifact(spec, compressed.weights, [pruner, quantizer])
    decoded = load_model(artifact, registry)
    error = 1 - accuracy(decoded, data.test_inputs, data.test_labels)
    layers = describe_artifact(artifact)
    result = {
        "model": name,
        "quick": quick,
        "dense_bytes": len(dense_artifact),
        "dense_test_error_pct": round(100 * dense_error, 2),
        "compressed_bytes": len(artifact),
        "compressed_test_error_pct": round(100 * error, 2),
        "ratio_vs_dense_artifact": round(len(dense_artifact) / len(artifact), 1),
        "ratio_vs_1070KB_or_1720KB": round(PAPER[name]["kb_before"] * 1000 / len(artifact), 1),
        "layers": [
            {
                "name": layer.name,
                "bits": layer.bits,
                "sparsity": round(layer.sparsity, 4),
                "encoding": layer.encoding,
                "record_bytes": layer.num_bytes,
            }
            for layer in layers
        ],
        "comm_bytes": dense_comm + compressed.comm_bytes,
        "recipe": {
            "dense_phases": recipe.dense_phases,
            "compress_rounds": rounds,
            "compress_lr": recipe.compress_lr,
            "local_epochs": recipe.local_epochs,
            "batch_size": recipe.batch_size,
            "prune": recipe.prune,
            "quantize": recipe.quantize,
        },
        "wall_s": round(time.perf_counter() - started, 1),
        "paper": PAPER[name],
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> None:
    """Parse arguments and run the selected models."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*RECIPES, "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="a few rounds: checks it runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("FEDSEARCH_DATA_DIR", "/work/shared/data")
    names = list(RECIPES) if args.model == "both" else [args.model]
    results = [run(name, args.quick, args.seed) for name in names]
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
