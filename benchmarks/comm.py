"""Bytes on the wire to reach a target accuracy: MNIST 2NN, pathological non-IID.

McMahan et al. 2017's setting: the 2NN (784-200-200-10, 199,210 params), the
60000 MNIST training images dealt as 2 label-sorted shards to each of 100
clients, C = 0.1 (10 clients a round), FedAvg. Each preset fixes the uplink and
downlink codec pipelines; the run stops at the first evaluated round whose
test accuracy reaches the target and reports the bytes the channel counted up
to that round (uplink, downlink, total), measured from the real encoded
payloads. 5% of the training images (3000, stratified, seed 0) are carved out
for validation and the other 57000 dealt to the clients (570 each, the paper:
600). The stopping round is chosen on validation (the first evaluation whose
validation accuracy reaches the target); the test accuracy of the model of that
round is reported beside it and never used. In delta mode each client's first
reference model is downloaded in full the first time it takes part and the
channel counts it (one-time bytes, in the total); the ``best_seeded`` preset is
the same run with ``initial_model = "seeded"`` (clients build the initial model
from the seed, 0 bytes), so both figures are measured.

    nice -n 15 python benchmarks/comm.py --preset float32 topk --out runs/comm.jsonl
    python benchmarks/comm.py --table runs/comm.jsonl

Run one preset at a time under ``nice``; every preset appends one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _federation import VAL_FRACTION, tapped

from fedsearch import get_registry
from fedsearch.config import FederationConfig
from fedsearch.federated import (
    FederatedData,
    FederatedRun,
    RoundRecord,
    accuracy,
    prepare_federated_data,
    run_federated,
)
from fedsearch.host import DOWNLINK, UPLINK, codec_pipeline_spec

Pipeline = list[tuple[str, dict[str, Any]]]
EF = ("error_feedback", {})

PRESETS: dict[str, dict[str, Any]] = {
    "float32": {"uplink": [("float32", {})], "downlink": [("float32", {})]},
    "float16": {"uplink": [("float16", {})], "downlink": [("float16", {})]},
    "bfloat16": {"uplink": [("bfloat16", {})], "downlink": [("bfloat16", {})]},
    "topk": {"uplink": [EF, ("topk", {"fraction": 0.01})], "downlink": [("float32", {})]},
    "randk": {"uplink": [EF, ("randk", {"fraction": 0.1})], "downlink": [("float32", {})]},
    "qsgd": {"uplink": [("qsgd", {"levels": 4, "norm": "max"})], "downlink": [("float32", {})]},
    "sign": {"uplink": [EF, ("sign", {})], "downlink": [("float32", {})]},
    "stc": {"uplink": [EF, ("stc", {"fraction": 0.01})], "downlink": [("float32", {})]},
    "topk_qsgd": {
        "uplink": [EF, ("topk", {"fraction": 0.01}), ("qsgd", {"levels": 8, "norm": "max"})],
        "downlink": [("float32", {})],
    },
    "best": {
        "uplink": [EF, ("stc", {"fraction": 0.01})],
        "downlink": [("stc", {"fraction": 0.02})],
        "downlink_mode": "delta",
    },
    "best_seeded": {
        "uplink": [EF, ("stc", {"fraction": 0.01})],
        "downlink": [("stc", {"fraction": 0.02})],
        "downlink_mode": "delta",
        "initial_model": "seeded",
    },
    "stc_delta_topk_qsgd": {
        "uplink": [EF, ("stc", {"fraction": 0.01})],
        "downlink": [("topk", {"fraction": 0.03}), ("qsgd", {"levels": 7, "norm": "max"})],
        "downlink_mode": "delta",
    },
}


class Reached(Exception):
    """Raised by the round callback when the target accuracy is reached."""


def load_data(num_clients: int) -> FederatedData:
    """MNIST less a validation carve, dealt as 2 label-sorted shards per client (seed 0)."""
    registry = get_registry()
    splits = registry.create("dataset", "mnist").load()
    shards = registry.create("partitioner", "shards", {"shards_per_client": 2})
    return prepare_federated_data(
        splits, val_fraction=VAL_FRACTION, partitioner=shards, num_clients=num_clients, seed=0
    )


def run_preset(name: str, args: argparse.Namespace, data: FederatedData) -> dict[str, Any]:
    """Train until the target accuracy (or the round cap); return the measured figures."""
    preset = PRESETS[name]
    registry = get_registry()
    uplink = codec_pipeline_spec(registry, preset["uplink"], direction=UPLINK)
    downlink = codec_pipeline_spec(registry, preset["downlink"], direction=DOWNLINK)
    federation = FederationConfig(
        num_clients=args.clients,
        rounds=args.max_rounds,
        fraction=args.fraction,
        local_epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        eval_every=args.eval_every,
        downlink=preset.get("downlink_mode", "model"),
        initial_model=preset.get("initial_model", "download"),
        execution=args.execution,
    )
    run, tap = tapped(
        FederatedRun(
            data=data,
            federation=federation,
            strategy=registry.create("strategy", "fedavg"),
            downlink_codec=downlink.build(),
            uplink_codec=uplink.build(),
            seed=args.seed,
        )
    )
    torch.manual_seed(args.seed)
    model = registry.create("architecture", "mnist_2nn").build(data.input_shape, data.num_classes)
    totals = {"uplink": 0, "downlink": 0, "one_time": 0}
    state: dict[str, Any] = {"accuracy": 0.0, "round": 0, "reached": False, "test": None}
    started = time.perf_counter()

    def on_round(record: RoundRecord) -> None:
        totals["uplink"] += record.uplink_bytes
        totals["downlink"] += record.downlink_bytes
        totals["one_time"] += record.one_time_bytes
        state["round"] = record.round
        if record.val_accuracy is not None:
            state["accuracy"] = record.val_accuracy
            if args.verbose:
                print(f"  {name} round {record.round}: {record.val_accuracy:.4f}", flush=True)
            if record.val_accuracy >= args.target:
                state["reached"] = True
                state["test"] = accuracy(model, data.test_inputs, data.test_labels, tap.weights)
                raise Reached

    with contextlib.suppress(Reached):
        run_federated(model, run, on_round=on_round)
    return {
        "preset": name,
        "uplink_codec": uplink.as_list(),
        "downlink_codec": downlink.as_list(),
        "downlink_mode": federation.downlink,
        "reached": state["reached"],
        "rounds": state["round"],
        "val_accuracy": state["accuracy"],
        "test_accuracy": state["test"],
        "initial_model": federation.initial_model,
        "participants": len(tap.participants),
        "uplink_bytes": totals["uplink"],
        "downlink_bytes": totals["downlink"],
        "one_time_bytes": totals["one_time"],
        "total_bytes": sum(totals.values()),
        "settings": {
            key: getattr(args, key)
            for key in ("clients", "fraction", "epochs", "batch_size", "lr", "seed", "target")
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }


def print_table(path: Path) -> None:
    """Markdown table of the results in ``path``, ratios against the float32 row of each seed.

    Then, per preset run at several seeds, the mean and spread (min to max) of
    its rounds and ratios.
    """
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    bases = {row["settings"]["seed"]: row for row in rows if row["preset"] == "float32"}
    print(
        "| preset | seed | uplink | downlink | rounds | val acc | test acc | uplink MB "
        "| downlink MB | one-time MB | total MB | uplink x | total x |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    spread: dict[str, list[tuple[int, float, float]]] = {}
    for row in rows:
        base = bases.get(row["settings"]["seed"])
        keys = ("uplink_bytes", "total_bytes")
        up, total = (base[key] / row[key] if base else float("nan") for key in keys)
        if row["reached"]:
            spread.setdefault(row["preset"], []).append((row["rounds"], up, total))
        reached = "" if row["reached"] else " (not reached)"
        mode = {"model": "", "delta": " (delta)"}[row["downlink_mode"]]
        if row.get("initial_model") == "seeded":
            mode = " (delta, seeded first reference)"
        test = f"{row['test_accuracy']:.4f}" if row.get("test_accuracy") is not None else "-"
        print(
            f"| {row['preset']} | {row['settings']['seed']} | {_pipe(row['uplink_codec'])} "
            f"| {_pipe(row['downlink_codec'])}{mode} | {row['rounds']}{reached} "
            f"| {row.get('val_accuracy', 0):.4f} | {test} | {row['uplink_bytes'] / 1e6:.2f} "
            f"| {row['downlink_bytes'] / 1e6:.2f} | {row['one_time_bytes'] / 1e6:.2f} "
            f"| {row['total_bytes'] / 1e6:.2f} | {up:.1f} | {total:.1f} |"
        )
    print("\n| preset | seeds reached | rounds mean (min-max) | uplink x mean (min-max) "
          "| total x mean (min-max) |\n| --- | --- | --- | --- | --- |")  # fmt: skip
    for preset, runs in spread.items():
        cells = [
            f"{sum(v) / len(v):.1f} ({min(v):.1f}-{max(v):.1f})" for v in zip(*runs, strict=True)
        ]
        print(f"| {preset} | {len(runs)} | " + " | ".join(cells) + " |")


def _pipe(stages: list[dict[str, Any]]) -> str:
    return " + ".join(stage["name"] + _knobs(stage["params"]) for stage in stages)


def _knobs(params: dict[str, Any]) -> str:
    shown = {key: value for key, value in params.items() if key != "seed"}
    return "(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else ""


def main(argv: list[str] | None = None) -> int:
    """Run the chosen presets, or print the table of a results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=["float32"])
    parser.add_argument("--out", type=Path, default=Path("runs/comm.jsonl"))
    parser.add_argument("--table", type=Path, help="print the table of a results file and exit")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--max-rounds", type=int, default=500)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--execution",
        choices=["auto", "sequential", "vectorized"],
        default="sequential",
        help="client execution (sequential measured faster for the 2NN at B=10 here)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.table is not None:
        print_table(args.table)
        return 0
    data = load_data(args.clients)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.preset:
        result = run_preset(name, args, data)
        print(json.dumps(result), flush=True)
        with args.out.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
