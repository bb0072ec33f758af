"""Federated distillation on MNIST: how much of the teacher-student gap does a student recover?

Setting: 100 clients, IID, C = 0.1, FedAvg (E = 1, B = 10, lr 0.05). The
teacher is a LeNet-300-100 trained federatedly: by this script
(``--teacher-rounds``), or the dense model ``benchmarks/deep_compression.py``
trained and cached in ``runs/`` (``--teacher-state``). Then the same small
student MLP is trained twice with identical settings and seed: on hard labels
alone, and distilled from the teacher (soft targets; ``--method fitnets`` adds
FitNets hints). Each client downloads the teacher once (counted in
``teacher_download_bytes``) and runs it on its own examples. Accuracies are on
the 10,000 MNIST test images.

    nice -n 10 python benchmarks/deep_compression.py --model lenet_300_100   # caches the teacher
    nice -n 10 python benchmarks/distillation.py \
        --teacher-state runs/dense-lenet_300_100-0-2ec9eb0b57.pt
    python benchmarks/distillation.py --quick      # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from fedsearch import CompressionContext, Teacher, build_artifact, get_registry
from fedsearch.artifact import ModelSpec
from fedsearch.config import FederationConfig
from fedsearch.federated import (
    FederatedRun,
    accuracy,
    predict_logits,
    prepare_federated_data,
    run_federated,
)


def main() -> None:
    """Train teacher, student alone and distilled student; print the gap recovered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds: checks it runs")
    parser.add_argument("--method", choices=["soft_target", "fitnets"], default="soft_target")
    parser.add_argument("--student-width", type=int, default=64)
    parser.add_argument("--teacher-rounds", type=int, default=100)
    parser.add_argument("--student-rounds", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--teacher-state",
        help="use this federatedly trained teacher (the dense LeNet-300-100 that "
        "benchmarks/deep_compression.py caches in runs/) instead of training one",
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    os.environ.setdefault("FEDSEARCH_DATA_DIR", "/work/shared/data")
    teacher_rounds, student_rounds = (3, 3) if args.quick else (args.teacher_rounds,
                                                                 args.student_rounds)  # fmt: skip
    registry = get_registry()
    splits = registry.create("dataset", "mnist", {}).load()
    data = prepare_federated_data(
        splits, val_fraction=0.05, partitioner=registry.create("partitioner", "iid", {}),
        num_clients=100, seed=args.seed,
    )  # fmt: skip

    def federated(rounds: int) -> FederatedRun:
        federation = FederationConfig(
            num_clients=100, rounds=rounds, fraction=0.1, local_epochs=1, batch_size=10,
            learning_rate=0.05, eval_every=max(1, rounds // 5),
        )  # fmt: skip
        return FederatedRun(
            data=data, federation=federation, strategy=registry.create("strategy", "fedavg", {}),
            downlink_codec=registry.create("codec", "float32", {}),
            uplink_codec=registry.create("codec", "float32", {}), seed=args.seed,
        )  # fmt: skip

    def build(name: str, params: dict) -> torch.nn.Module:
        torch.manual_seed(args.seed)
        return registry.create("architecture", name, params).build(
            data.input_shape, data.num_classes
        )

    def test_accuracy(model: torch.nn.Module, weights: dict) -> float:
        return accuracy(model, data.test_inputs, data.test_labels, weights)

    started = time.perf_counter()
    teacher_model = build("lenet_300_100", {})
    if args.teacher_state:
        teacher_model.load_state_dict(torch.load(args.teacher_state, weights_only=True)["weights"])
        teacher_rounds = f"from {args.teacher_state}"
    else:
        result = run_federated(teacher_model, federated(teacher_rounds))
        teacher_model.load_state_dict(result.weights)
    teacher_model.eval()
    teacher_weights = {k: v.detach().clone() for k, v in teacher_model.state_dict().items()}
    spec = ModelSpec("lenet_300_100", {}, data.input_shape, 10)
    teacher = Teacher(
        weights=teacher_weights,
        train_logits=predict_logits(teacher_model, data.train_inputs),
        val_accuracy=accuracy(teacher_model, data.val_inputs, data.val_labels),
        test_accuracy=accuracy(teacher_model, data.test_inputs, data.test_labels),
        artifact_bytes=len(build_artifact(spec, teacher_weights)),
        model=teacher_model,
    )
    print(f"teacher test accuracy {teacher.test_accuracy:.4f}", flush=True)

    student_params = {"widths": [args.student_width]}
    alone_model = build("mlp", student_params)
    alone = run_federated(alone_model, federated(student_rounds))
    alone_accuracy = test_accuracy(alone_model, alone.weights)
    print(f"student alone test accuracy {alone_accuracy:.4f}", flush=True)

    student_model = build("mlp", student_params)
    distiller = registry.create(
        "compressor", args.method, {"temperature": args.temperature, "alpha": args.alpha}
    )
    distiller.setup(CompressionContext(student_model, student_rounds, teacher))
    distilled = run_federated(
        student_model, federated(student_rounds), compressors=[distiller],
        one_time_downloads=distiller.one_time_downloads(),
    )  # fmt: skip
    distilled_accuracy = test_accuracy(student_model, distilled.weights)
    gap = teacher.test_accuracy - alone_accuracy
    recovered = (distilled_accuracy - alone_accuracy) / gap if gap > 0 else float("nan")
    figures = {
        "quick": args.quick,
        "method": args.method,
        "temperature": args.temperature,
        "alpha": args.alpha,
        "teacher": "lenet_300_100",
        "student": f"mlp {student_params['widths']}",
        "teacher_rounds": teacher_rounds,
        "student_rounds": student_rounds,
        "teacher_test_accuracy": round(teacher.test_accuracy, 4),
        "student_alone_test_accuracy": round(alone_accuracy, 4),
        "student_distilled_test_accuracy": round(distilled_accuracy, 4),
        "gap_recovered": round(recovered, 3),
        "teacher_download_bytes": distilled.one_time_bytes,
        "clients_served_teacher": distilled.one_time_bytes // max(1, teacher_payload(teacher)),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures, indent=2), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(figures, handle, indent=2)


def teacher_payload(teacher: Teacher) -> int:
    """Bytes of one float32 teacher download."""
    return sum(tensor.numel() for tensor in teacher.weights.values()) * 4


if __name__ == "__main__":
    main()
