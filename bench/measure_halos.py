"""Measure the halo each model needs (esrgan_plugin.tiles.halo's probe) and write the shipped table.

The table (``esrgan_plugin/weights/halos.json``) saves users the probe's one-time cost for the
shipped models and the weight packages' models; any other model is probed on first use.

    python bench/measure_halos.py MODEL... [--write esrgan_plugin/weights/halos.json] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from esrgan_plugin.models.loading import load_model
from esrgan_plugin.tiles.halo import HALO_BOUND, measure_halo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model files or shipped names")
    parser.add_argument(
        "--write", type=Path, default=None, help="merge the results into this table"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table: dict[str, list[dict[str, object]]] = {"models": []}
    if args.write is not None and args.write.is_file():
        table = json.loads(args.write.read_text())
    by_hash = {str(entry["weights_sha256"]): entry for entry in table["models"]}
    for name in args.models:
        start = time.perf_counter()
        model = load_model(name)
        found = measure_halo(model.module, HALO_BOUND)
        entry = asdict(found) | {"model": Path(name).stem}
        by_hash[found.weights_sha256] = entry
        print(
            f"{Path(name).stem}: halo {found.halo} (bound {found.bound * 255:.2f}/255, reach "
            f"{found.reach}, exact {found.exact}), {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        if args.write is not None:
            table["models"] = sorted(by_hash.values(), key=lambda e: str(e["model"]))
            args.write.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
