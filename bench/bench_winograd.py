"""Winograd F(2x2, 3x3) against oneDNN's direct 3x3 convolution, on RealESRGAN_x4plus's layers.

Point 5 of the performance issue: a 3x3 convolution computed by Winograd's minimal filtering
F(2x2, 3x3) needs 16 multiplies per 2x2 output tile instead of 36 (2.25x fewer), at the cost of
transforming the input (4x4 tiles overlapping by 2) and the output. PyTorch exposes no Winograd
algorithm for oneDNN (and oneDNN 3 keeps its Winograd convolution only for some non-x86 CPUs),
so this bench writes the transform with PyTorch operations, the matrix products in one batched
matmul (fp32 or bf16, the same kernels the convolutions use), and times it against
``F.conv2d`` on the same input, in the same process, interleaved; also the batched matmul
alone, the bound a fused transform could approach. Accuracy: error against a
float64 convolution, as a PSNR over the output's range.

    python bench/bench_winograd.py [--size 192] [--repeats 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import machine_line  # noqa: E402
from native_bf16 import BF16_LEFT_OUT, bf16_here  # noqa: E402

from esrgan_plugin import load_model  # noqa: E402

# F(2x2, 3x3): Y = A^T [(G g G^T) * (B^T d B)] A, with B^T = [[1, 0, -1, 0], [0, 1, 1, 0],
# [0, -1, 1, 0], [0, 1, 0, -1]] and A^T = [[1, 1, 1, 0], [0, 1, -1, -1]] applied below as adds.
G = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float64)


class Winograd:
    """A 3x3, stride 1, padding 1 convolution as F(2x2, 3x3); weights transformed once."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> None:
        # U[e, k, c] for the 16 positions e of the 4x4 transformed tile
        u = torch.einsum("ai,kcij,bj->abkc", G, weight.double(), G)
        self.u = u.reshape(16, *weight.shape[:2]).to(dtype).contiguous()
        self.bias = bias.float()
        self.dtype = dtype

    def transformed_input(self, x: torch.Tensor) -> torch.Tensor:
        """B^T d B for every 4x4 tile d of ``x`` (padded): (16, channels, tiles)."""
        n, c, h, w = x.shape
        th, tw = (h + 1) // 2, (w + 1) // 2
        padded = F.pad(x, (1, 2 * tw - w + 1, 1, 2 * th - h + 1)).to(self.dtype)
        # 4x4 tiles with stride 2: (n, c, th, tw, 4, 4)
        tiles = padded.unfold(2, 4, 2).unfold(3, 4, 2)
        d = tiles.float()
        # input transform B^T d B, with adds only (B has entries 0 and +-1)
        r = torch.stack(
            [d[..., 0, :] - d[..., 2, :], d[..., 1, :] + d[..., 2, :],
             d[..., 2, :] - d[..., 1, :], d[..., 1, :] - d[..., 3, :]],
            dim=-2,
        )  # fmt: skip
        v = torch.stack(
            [
                r[..., 0] - r[..., 2],
                r[..., 1] + r[..., 2],
                r[..., 2] - r[..., 1],
                r[..., 1] - r[..., 3],
            ],
            dim=-1,
        )  # (n, c, th, tw, 4, 4)
        return v.permute(4, 5, 1, 0, 2, 3).reshape(16, c, n * th * tw).to(self.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        th, tw = (h + 1) // 2, (w + 1) // 2
        v = self.transformed_input(x)
        m = torch.bmm(self.u, v).float()  # (16, k, tiles)
        k = m.shape[1]
        m = m.reshape(4, 4, k, n, th, tw)
        # output transform A^T m A
        s = torch.stack([m[0] + m[1] + m[2], m[1] - m[2] - m[3]])  # (2, 4, k, n, th, tw)
        y = torch.stack([s[:, 0] + s[:, 1] + s[:, 2], s[:, 1] - s[:, 2] - s[:, 3]], dim=1)
        # (2, 2, k, n, th, tw) -> (n, k, 2 th, 2 tw)
        out = y.permute(3, 2, 4, 0, 5, 1).reshape(n, k, 2 * th, 2 * tw)[..., :h, :w]
        return out + self.bias.view(1, -1, 1, 1)


def psnr(out: torch.Tensor, reference: torch.Tensor) -> float:
    span = (reference.max() - reference.min()).item()
    mse = (out.double() - reference).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(span**2 / mse)).item()


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = load_model("realesrgan-x4plus").module
    block = net.body[0].rdb1
    layers = {
        "conv1 64->32": block.conv1,
        "conv5 192->64": block.conv5,
        "conv_body 64->64": net.conv_body,
    }
    print(
        f"## Winograd F(2x2,3x3) against F.conv2d, {args.size}x{args.size}, median of {args.repeats}\n"
    )
    print(machine_line() + "\n")
    dtypes = [(torch.float32, "fp32"), (torch.bfloat16, "bf16")]
    if not bf16_here():  # emulated bf16 matmuls: slow, and no kernel worth comparing
        dtypes = dtypes[:1]
        print(f"{BF16_LEFT_OUT}.\n")
    print(
        "| layer | precision | conv2d s | Winograd s | Winograd / conv2d | its products alone / conv2d "
        "| PSNR conv2d | PSNR Winograd |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, conv in layers.items():
        x = torch.rand(1, conv.in_channels, args.size, args.size) * 2 - 0.5
        reference = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
        for dtype, label in dtypes:
            weight = conv.weight.to(dtype).contiguous(memory_format=torch.channels_last)
            bias = conv.bias.to(dtype)
            xin = x.to(dtype).contiguous(memory_format=torch.channels_last)
            winograd = Winograd(conv.weight.detach(), conv.bias.detach(), dtype)
            with torch.no_grad():
                direct_out = F.conv2d(xin, weight, bias, padding=1)
                wino_out = winograd(x)
                v = winograd.transformed_input(x)
                direct, wino, products = [], [], []
                for _ in range(args.repeats):  # interleaved rounds
                    direct.append(timed(partial(F.conv2d, xin, weight, bias, padding=1)))
                    wino.append(timed(partial(winograd, x)))
                    products.append(timed(partial(torch.bmm, winograd.u, v)))
            d, w = statistics.median(direct), statistics.median(wino)
            p = statistics.median(products)
            print(
                f"| {name} | {label} | {d:.4f} | {w:.4f} | {w / d:.2f}x | {p / d:.2f}x | "
                f"{psnr(direct_out, reference):.1f} dB | {psnr(wino_out, reference):.1f} dB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
