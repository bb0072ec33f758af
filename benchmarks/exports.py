"""Deployable exports of the quickstart's front: ONNX with integer weights, re-scored.

Run from the repository root:

    python benchmarks/exports.py

It runs ``fedsearch run studies/quickstart.toml`` in a temporary folder, then
``fedsearch export --pareto --format onnx`` into it, and for every quantized
trial on the feasible front prints: its artifact size (model_bytes), the ONNX
file's size, their ratio against the limit ``2.5 x model_bytes + 2 KB``, the
integer initializer types of the file, whether onnxruntime reproduces the
recorded validation and test accuracies exactly, and the largest absolute
logit difference from the artifact's decoded model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
import optuna

REPO = Path(__file__).resolve().parents[1]
INTEGER_TYPES = {"INT4", "UINT4", "INT8", "UINT8", "INT16", "UINT16"}


def main() -> None:
    fedsearch = str(Path(sys.executable).with_name("fedsearch"))
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [fedsearch, "run", str(REPO / "studies" / "quickstart.toml")],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        storage = f"sqlite:///{Path(folder) / 'runs' / 'fedsearch.db'}"
        front = Path(folder) / "front"
        subprocess.run(
            [fedsearch, "export", "--storage", storage, "--study-name", "quickstart",
             "--pareto", "--format", "onnx", "-o", str(front)],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        study = optuna.load_study(study_name="quickstart", storage=storage)
        rows = json.loads((front / "exports.json").read_text())
        print("| trial | quantizer | model_bytes | ONNX bytes | ratio | limit | integer "
              "initializers | val acc equal | test acc equal | max diff |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        failures = 0
        for row in rows:
            trial = study.trials[row["trial"]]
            quantize = trial.user_attrs["selection"].get("quantize") or {}
            if quantize.get("name", "none") == "none":
                continue
            proto = onnx.load(row["path"])
            types = sorted(
                {onnx.TensorProto.DataType.Name(item.data_type) for item in proto.graph.initializer}
                & INTEGER_TYPES
            )
            limit = 2.5 * row["model_bytes"] + 2048
            val_equal = row["val_accuracy"] == trial.values[0]
            test_equal = row["test_accuracy"] == trial.user_attrs["test_accuracy"]
            ok = (
                types and val_equal and test_equal and row["max_difference"] <= 1e-5
                and row["bytes"] <= limit
            )  # fmt: skip
            failures += not ok
            bits = quantize.get("params", {}).get("bits")
            print(
                f"| {trial.number} | {quantize['name']} {bits} bits | {row['model_bytes']} | "
                f"{row['bytes']} | {row['ratio']:.2f} | {limit:.0f} | {', '.join(types)} | "
                f"{val_equal} | {test_equal} | {row['max_difference']:.1e} |"
            )
        print(f"front: {len(rows)} trials; quantized trials failing a check: {failures}")


if __name__ == "__main__":
    main()
