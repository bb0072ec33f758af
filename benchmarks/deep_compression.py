"""Deep Compression, federated: LeNet-300-100 and LeNet-5 on MNIST (Han et al. 2016, Table 1).

Recipe, all through fedsearch's public plugins and its federated simulation
(100 clients, IID, C = 0.1, FedAvg; 5% of the training images carved out for
validation, split and partition seeded with ``DATA_SEED``):

1. train the dense model federatedly and measure its float32 artifact;
2. continue federatedly with per-layer magnitude pruning on Zhu & Gupta's
   cubic schedule and quantization-aware training (uniform, symmetric),
   masks kept through aggregation; once per try in ``TRIES``;
3. write each try's compressed artifact (sparse index/bitmap encoding,
   bit-packed codes, LZMA entropy coding), load it back into a model and
   measure the validation error of that decoded model;
4. choose one try on validation (``choose``), rerun it at the other
   ``--seeds`` and report the test error of the chosen try only.

The size is ``len()`` of the artifact bytes; the test error is on the 10,000
MNIST test images, which neither training nor the choice sees.

    nice -n 15 python benchmarks/deep_compression.py --model lenet_300_100 --seeds 0 1 2
    nice -n 15 python benchmarks/deep_compression.py --model lenet5

Pretrained flow (issue 14): the dense model is trained centrally by
``benchmarks/pretrain.py`` (state dicts in ``runs/pretrained/``), then pruned
and quantized with federated fine-tuning only (``PRETRAINED_RECIPES``, tries in
``PRETRAINED_TRIES``, the same choice on validation):

    nice -n 10 python benchmarks/pretrain.py
    nice -n 10 python benchmarks/deep_compression.py --pretrained runs/pretrained --threads 1
    python benchmarks/deep_compression.py --model lenet_300_100 --quick   # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from _federation import VAL_FRACTION, default_data_dir, fedavg_run, spread
from torch import nn

from fedsearch import (
    CompressionContext,
    build_artifact,
    describe_artifact,
    get_registry,
    load_model,
)
from fedsearch.artifact import ModelSpec
from fedsearch.config import FederationConfig
from fedsearch.federated import (
    FederatedData,
    RoundRecord,
    accuracy,
    prepare_federated_data,
    run_federated,
)

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

PRETRAINED_RECIPES = {  # from a centrally pretrained model (benchmarks/pretrain.py): short
    "lenet_300_100": Recipe(
        dense_phases=(), compress_rounds=40, compress_lr=0.02, local_epochs=1, batch_size=10,
        prune={"sparsity": 0.91, "sparsity_first": 0.93, "sparsity_last": 0.74},
        quantize={"bits": 6, "start_fraction": 0.5},
    ),
    "lenet5": Recipe(
        dense_phases=(), compress_rounds=30, compress_lr=0.02, local_epochs=1, batch_size=10,
        prune={"sparsity": 0.93, "sparsity_first": 0.4, "sparsity_last": 0.85},
        quantize={"bits": 5, "start_fraction": 0.5},
    ),
}  # fmt: skip
PRETRAINED_TRIES = {
    "lenet_300_100": {
        "a": {},
        "b": {"quantize": {"bits": 5, "start_fraction": 0.5},
              "prune": {"sparsity": 0.9, "sparsity_first": 0.92, "sparsity_last": 0.7}},
        "c": {"compress_rounds": 80,
              "prune": {"sparsity": 0.9, "sparsity_first": 0.92, "sparsity_last": 0.7}},
        "d": {"compress_rounds": 60, "compress_lr": 0.01,
              "prune": {"sparsity": 0.9, "sparsity_first": 0.92, "sparsity_last": 0.7}},
    },
    "lenet5": {"a": {}, "b": {"compress_rounds": 60},
               "c": {"compress_rounds": 80, "compress_lr": 0.01}},
}  # fmt: skip

TRIES = {  # compression knobs tried on top of RECIPES; the script picks one on validation
    "lenet_300_100": {
        "a": {"compress_lr": 0.03, "quantize": {"bits": 5, "start_fraction": 0.5},
              "prune": {"sparsity": 0.92, "sparsity_first": 0.94, "sparsity_last": 0.75}},
        "b": {"quantize": {"bits": 5, "start_fraction": 0.4}},
        "c": {},
    },
    "lenet5": {"a": {}},
}  # fmt: skip
SIZE_TARGET = 40
"""Han et al.'s ratio; a try qualifies when float32 size / artifact bytes reaches it."""
DATA_SEED = 0
"""Validation carve and client partition; fixed, so every seed evaluates on the same split."""


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


def progress(record: RoundRecord) -> None:
    """Print the validation accuracy of evaluated rounds."""
    if record.val_accuracy is not None:
        print(f"  round {record.round}: val accuracy {record.val_accuracy:.4f}", flush=True)


def build(name: str, data: FederatedData) -> nn.Module:
    """A fresh model of the architecture ``name`` for the data's shapes."""
    architecture = get_registry().create("architecture", name, {})
    return architecture.build(data.input_shape, data.num_classes)


def dense_model(
    name: str, recipe: Recipe, data: FederatedData, quick: bool
) -> tuple[nn.Module, int]:
    """The dense model trained federatedly (seed 0), cached in ``runs/``; and its traffic."""
    torch.manual_seed(DATA_SEED)
    model = build(name, data)
    key = hash_of(recipe.dense_phases, recipe.local_epochs, recipe.batch_size)
    cache = Path("runs") / f"dense-{name}-{DATA_SEED}-{key}.pt"
    if cache.exists() and not quick:  # the dense model of an earlier run with this recipe
        saved = torch.load(cache, weights_only=True)
        model.load_state_dict(saved["weights"])
        print(f"{name}: dense model from {cache}", flush=True)
        return model, saved["comm_bytes"]
    comm = 0
    for rounds, learning_rate in recipe.dense_phases:
        print(f"{name}: dense training, {rounds} rounds at lr {learning_rate}", flush=True)
        run = fedavg_run(data, federation(recipe, rounds, learning_rate), DATA_SEED)
        phase = run_federated(model, run, on_round=progress)
        model.load_state_dict(phase.weights)
        comm += phase.comm_bytes
    if not quick:
        cache.parent.mkdir(exist_ok=True)
        torch.save({"weights": model.state_dict(), "comm_bytes": comm}, cache)
    return model, comm


def compress(
    name: str, recipe: Recipe, dense: dict, data: FederatedData, seed: int
) -> tuple[bytes, int]:
    """Prune and quantize from the dense weights; return the artifact and the traffic."""
    registry = get_registry()
    model = build(name, data)
    model.load_state_dict(dense)
    schedule = {"scope": "layer", "schedule": "gradual", "start_fraction": 0.0}
    schedule["end_fraction"] = recipe.quantize["start_fraction"]  # prune, then QAT
    pruner = registry.create("compressor", "magnitude", schedule | recipe.prune)
    quantizer = registry.create("compressor", "uniform", recipe.quantize)
    rounds = recipe.compress_rounds
    for compressor in (pruner, quantizer):
        compressor.setup(CompressionContext(model=model, num_rounds=rounds, teacher=None))
    print(f"{name}: pruning + QAT, {rounds} rounds, seed {seed}", flush=True)
    run = fedavg_run(data, federation(recipe, rounds, recipe.compress_lr), seed)
    result = run_federated(model, run, compressors=[pruner, quantizer], on_round=progress)
    spec = ModelSpec(name, {}, data.input_shape, data.num_classes)
    return build_artifact(spec, result.weights, [pruner, quantizer]), result.comm_bytes


def error_pct(artifact: bytes, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Error, in percent, of the model decoded from ``artifact``."""
    return round(100 * (1 - accuracy(load_model(artifact, get_registry()), inputs, labels)), 2)


def choose(tries: dict[str, dict]) -> str:
    """The try chosen on validation: lowest validation error among those reaching the size
    target (ties: the smaller artifact); when none reaches it, the highest ratio."""
    qualified = [label for label, t in tries.items() if t["ratio_vs_float32"] >= SIZE_TARGET]
    if not qualified:
        return max(tries, key=lambda label: tries[label]["ratio_vs_float32"])
    return min(qualified, key=lambda label: (tries[label]["val_error_pct"], tries[label]["bytes"]))


def pretrained_model(name: str, data: FederatedData, folder: Path) -> nn.Module:
    """The centrally pretrained model of ``benchmarks/pretrain.py`` (a state dict)."""
    path = folder / f"{name}.pt"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python benchmarks/pretrain.py` first")
    model = build(name, data)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    print(f"{name}: pretrained model from {path}", flush=True)
    return model


def run(
    name: str, quick: bool, seeds: list[int], only: list[str] | None, pretrained: Path | None = None
) -> dict:
    """Train (or load), try every compression recipe, choose on validation, report test."""
    registry = get_registry()
    base = (PRETRAINED_RECIPES if pretrained else RECIPES)[name]
    if quick:
        base = Recipe(((2, 0.1), (1, 0.05)), 4, 0.05, 1, 50, base.prune, base.quantize)
    splits = registry.create("dataset", "mnist", {}).load()
    data = prepare_federated_data(
        splits, val_fraction=VAL_FRACTION, partitioner=registry.create("partitioner", "iid", {}),
        num_clients=100, seed=DATA_SEED,
    )  # fmt: skip
    started = time.perf_counter()
    if pretrained is not None:  # trained centrally: no federated traffic before compression
        model, dense_comm = pretrained_model(name, data, pretrained), 0
    else:
        model, dense_comm = dense_model(name, base, data, quick)
    dense = {k: v.detach().clone() for k, v in model.state_dict().items()}
    spec = ModelSpec(name, {}, data.input_shape, data.num_classes)
    dense_artifact = build_artifact(spec, dense)
    float32_bytes = 4 * sum(t.numel() for t in dense.values() if t.is_floating_point())
    print(f"  dense: {len(dense_artifact)} B artifact, {float32_bytes} B float32", flush=True)

    tried = (PRETRAINED_TRIES if pretrained else TRIES)[name]
    recipes = {label: replace(base, **changes) for label, changes in tried.items()}
    recipes = {label: r for label, r in recipes.items() if not only or label in only}
    tries, artifacts = {}, {}
    for label, recipe in recipes.items():
        artifact, comm = compress(name, recipe, dense, data, seeds[0])
        artifacts[label] = artifact
        tries[label] = {
            "recipe": asdict(recipe),
            "bytes": len(artifact),
            "ratio_vs_float32": round(float32_bytes / len(artifact), 1),
            "val_error_pct": error_pct(artifact, data.val_inputs, data.val_labels),
            "comm_bytes": dense_comm + comm,
        }
        print(f"  try {label}: {json.dumps(tries[label])}", flush=True)
    chosen = choose(tries)
    print(f"{name}: try {chosen} chosen on validation", flush=True)
    per_seed = {seeds[0]: artifacts[chosen]}
    for seed in seeds[1:]:
        per_seed[seed] = compress(name, recipes[chosen], dense, data, seed)[0]
    test = {seed: error_pct(a, data.test_inputs, data.test_labels) for seed, a in per_seed.items()}
    result = {
        "model": name,
        "quick": quick,
        "pretrained": str(pretrained) if pretrained else None,
        "data_seed": DATA_SEED,
        "float32_bytes": float32_bytes,
        "dense_bytes": len(dense_artifact),
        "dense_val_error_pct": error_pct(dense_artifact, data.val_inputs, data.val_labels),
        "dense_test_error_pct": error_pct(dense_artifact, data.test_inputs, data.test_labels),
        "tries": tries,
        "chosen": chosen,
        "chosen_per_seed": {
            seed: {
                "bytes": len(artifact),
                "ratio_vs_float32": round(float32_bytes / len(artifact), 1),
                "val_error_pct": error_pct(artifact, data.val_inputs, data.val_labels),
                "test_error_pct": test[seed],
            }
            for seed, artifact in per_seed.items()
        },
        "chosen_test_error_pct": spread(list(test.values())),
        "chosen_bytes": spread([len(a) for a in per_seed.values()]),
        "chosen_layers": [
            {
                "name": layer.name,
                "bits": layer.bits,
                "sparsity": round(layer.sparsity, 4),
                "encoding": layer.encoding,
                "record_bytes": layer.num_bytes,
            }
            for layer in describe_artifact(artifacts[chosen])
        ],
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
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0],
        help="the tries run at the first; the chosen one is rerun at the others",
    )  # fmt: skip
    parser.add_argument("--tries", nargs="+", help="run only these tries (labels in TRIES)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument(
        "--pretrained", type=Path, metavar="DIR",
        help="start from DIR/<model>.pt (benchmarks/pretrain.py) instead of federated training",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    default_data_dir()
    names = list(RECIPES) if args.model == "both" else [args.model]
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [run(name, args.quick, args.seeds, args.tries, args.pretrained) for name in names]
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
