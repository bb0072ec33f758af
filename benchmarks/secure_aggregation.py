"""Bytes and time per round of plain, SecAgg+ and CKKS aggregation, against clients and update size.

For each number of clients per round (10, 50, 100) and update size (values per
update), every client holds a random update (normal, sd 0.01, seed 0; weight
= 100 examples) and one round of aggregation runs through a real
``SimulatedChannel``: every message encoded and counted. Reported per client
per round: the uplink bytes, the downlink bytes of the protocol (key routing,
shares, unmasking requests; the model download is the same for all and left
out), the total, its ratio to the plain float32 uplink, the largest error of
the aggregated mean against the float64 mean, and the wall time of the round
(all parties played on one shared machine: not a deployment's latency).

Configurations:

- ``plain-float32`` / ``plain-qsgd``: no protection, the uplink codec's bytes
  (qsgd: 4 levels, max norm) per client; the server sees every update.
- ``secagg32``: SecAgg+ defaults (32-bit ring, 16-bit quantization, graph
  degree max(8, 3 log2 n), threshold half the degree + 1, no dropout).
- ``secagg16``: the ring narrowed to 16 bits, which only holds the sum with a
  coarser grid (quantization_bits 8, max_weight 1: unweighted mean): the
  compression SecAgg itself allows.
- ``secagg32-drop30``: defaults with 30% of clients dropping after sharing keys
  (the server reconstructs their mask keys); a round in which some client has
  fewer surviving neighbours than the threshold aborts, recorded as such.
- ``secagg32-drop30-t03``: the same with ``threshold_fraction = 0.3``.
- ``ckks``: CKKS defaults (N = 8192, moduli [60, 40, 60], scale 2**40); the
  one-time public-context download is reported separately.

    nice -n 10 python benchmarks/secure_aggregation.py --out runs/secagg.jsonl
    python benchmarks/secure_aggregation.py --table runs/secagg.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fedsearch_builtins.codecs import Float32Codec, QsgdCodec
from fedsearch_builtins.secure_aggregation import CkksAggregator, SecAggPlus

from fedsearch import FedsearchError
from fedsearch.federated import SimulatedChannel

WEIGHT = 100
CONFIGS: dict[str, Any] = {
    "plain-float32": Float32Codec,
    "plain-qsgd": lambda: QsgdCodec(QsgdCodec.Params(levels=4, norm="max")),
    "secagg32": lambda: SecAggPlus(),
    "secagg16": lambda: SecAggPlus(
        SecAggPlus.Params(field_bits=16, quantization_bits=8, max_weight=1, clip=0.05)
    ),
    "secagg32-drop30": lambda: SecAggPlus(SecAggPlus.Params(dropout=0.3)),
    "secagg32-drop30-t03": lambda: SecAggPlus(
        SecAggPlus.Params(dropout=0.3, threshold_fraction=0.3)
    ),
    "ckks": lambda: CkksAggregator(),
}


def updates(clients: int, size: int, seed: int) -> dict[int, dict[str, torch.Tensor]]:
    """Random updates of ``size`` float32 values, one per client."""
    rng = np.random.default_rng(seed)
    return {
        client: {"w": torch.tensor(rng.normal(0, 0.01, size), dtype=torch.float32)}
        for client in range(clients)
    }


def measure(config: str, clients: int, size: int, seed: int) -> dict[str, Any]:
    """One round of ``config``; bytes per client, error, wall time."""
    data = updates(clients, size, seed)
    channel = SimulatedChannel(downlink_codec=Float32Codec(), uplink_codec=Float32Codec())
    started = time.perf_counter()
    built = CONFIGS[config]()
    if config.startswith("plain"):
        channel.uplink_codec = built
        decoded = [channel.transfer(u, direction="uplink", client=c) for c, u in data.items()]
        mean = torch.stack([d["w"].double() for d in decoded]).mean(0)
        survivors = clients
    else:
        try:
            result = built.aggregate(
                channel, data, dict.fromkeys(data, WEIGHT), round_index=0, seed=seed
            )
        except FedsearchError as error:
            return {"config": config, "clients": clients, "size": size, "aborted": str(error)}
        mean = result.mean_delta["w"].double()
        survivors = len(result.survivors)
        data = {c: data[c] for c in result.survivors}
    elapsed = time.perf_counter() - started
    traffic = channel.end_round()
    exact = torch.stack([u["w"].double() for u in data.values()]).mean(0)
    plain_uplink = len(Float32Codec().encode(next(iter(data.values()))))
    return {
        "config": config,
        "clients": clients,
        "size": size,
        "seed": seed,
        "survivors": survivors,
        "uplink_per_client": traffic.uplink / clients,
        "downlink_per_client": traffic.downlink / clients,
        "one_time_per_client": traffic.one_time / clients,
        "ratio_to_float32": (traffic.uplink + traffic.downlink) / clients / plain_uplink,
        "max_error": float((mean - exact).abs().max()),
        "wall_s": round(elapsed, 3),
    }


def table(path: Path) -> None:
    """A Markdown table of the recorded rows."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print(
        "| config | clients | values | up B/client | down B/client | x float32 | "
        "one-time B/client | max error | wall s (shared machine) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        if "aborted" in row:
            print(
                f"| {row['config']} | {row['clients']} | {row['size']:,} | aborted: "
                f"{row['aborted']} | | | | | |"
            )
            continue
        print(
            f"| {row['config']} | {row['clients']} | {row['size']:,} | "
            f"{row['uplink_per_client']:,.0f} | {row['downlink_per_client']:,.0f} | "
            f"{row['ratio_to_float32']:.2f} | {row['one_time_per_client']:,.0f} | "
            f"{row['max_error']:.1e} | {row['wall_s']:.2f} |"
        )


def main() -> None:
    """Measure, appending one JSON line per configuration, or print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path)
    args = parser.parse_args()
    if args.table is not None:
        table(args.table)
        return
    for size in args.sizes:
        for clients in args.clients:
            for config in args.configs:
                row = measure(config, clients, size, args.seed)
                print(json.dumps(row), flush=True)
                if args.out is not None:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    with args.out.open("a") as stream:
                        stream.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
