"""What ``precision: auto`` chooses for each model on this machine, and the measured dB.

Runs (or reads from the cache) the measurement of ``esrgan_plugin.engines.precision`` and prints
one Markdown row per model: the choice, its worst-crop PSNR against fp32, every precision tried
with its figure or why it was not, and the seconds taken (a cached choice takes well under one).

    python bench/precision_auto.py [--device cpu] [MODEL ...]
"""

from __future__ import annotations

import argparse
import time

from esrgan_plugin.device import resolve_device
from esrgan_plugin.engines.precision import choose_precision
from esrgan_plugin.models.loading import load_model
from esrgan_plugin.options import UpscaleOptions

DEFAULT_MODELS = ["default-psnr", "realesr-animevideov3-x4", "realesrgan-x4plus"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"| model ({device}) | chosen | dB vs fp32 | tried | seconds |")
    print("| --- | --- | ---: | --- | ---: |")
    for name in args.models:
        model = load_model(name)
        start = time.perf_counter()
        choice = choose_precision(
            model.module, model.descriptor, device, UpscaleOptions(device=args.device)
        )
        seconds = time.perf_counter() - start
        tried = "; ".join(f"{p}: {v}" for p, v in choice.tried.items()) or choice.how
        db = "" if choice.psnr_db is None else f"{choice.psnr_db:.2f}"
        print(f"| {name} | {choice.precision} | {db} | {tried} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
