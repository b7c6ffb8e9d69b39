"""Write small networks as ncnn ``.param`` + ``.bin`` files, laid out as ncnn's converters do.

Test-only: the graphs follow the structure of Real-ESRGAN's published ncnn files (Split layers
fanning out every blob used more than once, fused LeakyReLU in convolutions, fp16-tagged
weights, raw fp32 biases and PReLU slopes), so the reader can be checked on tiny models and the
``ncnn`` package can run the same files as a reference.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from esrgan_plugin.arch.compact import SRVGGNetCompact
from esrgan_plugin.arch.rrdbnet import RRDB, RRDBNet

FP16_TAG = struct.pack("<I", 0x01306B47)


@dataclass
class _Layer:
    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: str


@dataclass
class _Graph:
    fp16: bool = True
    layers: list[_Layer] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    count: int = 0

    def blob(self) -> str:
        self.count += 1
        return f"b{self.count}"

    def add(self, kind: str, inputs: list[str], params: str = "", output: str = "") -> str:
        out = output or self.blob()
        self.layers.append(
            _Layer(kind, f"{kind.lower()}_{len(self.layers)}", inputs, [out], params)
        )
        return out

    def conv(self, x: str, conv: nn.Conv2d, leaky: bool = False, output: str = "") -> str:
        weight = conv.weight.detach().float().numpy()
        cout, _, k, _ = weight.shape
        params = f"0={cout} 1={k} 4={k // 2} 5=1 6={weight.size}"
        if leaky:
            params += " 9=2 -23310=1,2.000000e-01"
        if self.fp16:
            raw = weight.astype("<f2").tobytes()
            self.data += FP16_TAG + raw + b"\0" * (-len(raw) % 4)
        else:
            self.data += b"\0\0\0\0" + weight.astype("<f4").tobytes()
        assert conv.bias is not None
        self.data += conv.bias.detach().float().numpy().astype("<f4").tobytes()
        return self.add("Convolution", [x], params, output)

    def prelu(self, x: str, prelu: nn.PReLU) -> str:
        slopes = prelu.weight.detach().float().numpy()
        self.data += slopes.astype("<f4").tobytes()
        return self.add("PReLU", [x], f"0={slopes.size}")

    def write(self, path: Path) -> Path:
        """Insert Split layers for blobs used more than once, then write ``.param`` and ``.bin``."""
        uses = Counter(b for layer in self.layers for b in layer.inputs)
        lines: list[_Layer] = []
        seen: Counter[str] = Counter()
        for layer in [_Layer("Input", "input", [], ["data"], ""), *self.layers]:
            renamed = []
            for b in layer.inputs:
                if uses[b] > 1:
                    renamed.append(f"{b}_splitncnn_{seen[b]}")
                    seen[b] += 1
                else:
                    renamed.append(b)
            lines.append(_Layer(layer.kind, layer.name, renamed, layer.outputs, layer.params))
            out = layer.outputs[0]
            if uses[out] > 1:
                splits = [f"{out}_splitncnn_{i}" for i in range(uses[out])]
                lines.append(_Layer("Split", f"split_{out}", [out], splits, ""))
        blobs = sum(len(layer.outputs) for layer in lines)
        text = ["7767517", f"{len(lines)} {blobs}"]
        for x in lines:
            blob_names = " ".join([*x.inputs, *x.outputs])
            text.append(
                f"{x.kind:<24} {x.name:<24} {len(x.inputs)} {len(x.outputs)} {blob_names} {x.params}".rstrip()
            )
        param = path.with_suffix(".param")
        param.write_text("\n".join(text) + "\n")
        path.with_suffix(".bin").write_bytes(bytes(self.data))
        return param


def write_rrdbnet(model: RRDBNet, path: Path, fp16: bool = True) -> Path:
    """``model`` (x4/x8, no pixel-unshuffle) as ncnn files; returns the ``.param`` path."""
    assert model.config.unshuffle_factor == 1
    g = _Graph(fp16)
    feat = g.conv("data", model.conv_first)
    h = feat
    for block in model.body:
        assert isinstance(block, RRDB)
        block_in = h
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            parts = [h]
            for conv in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4):
                source = parts[0] if len(parts) == 1 else g.add("Concat", list(parts))
                parts.append(g.conv(source, conv, leaky=True))
            x5 = g.conv(g.add("Concat", list(parts)), rdb.conv5)
            h = g.add("Eltwise", [x5, parts[0]], "0=1 -23301=2,2.000000e-01,1.000000e+00")
        h = g.add("Eltwise", [h, block_in], "0=1 -23301=2,2.000000e-01,1.000000e+00")
    h = g.add("BinaryOp", [feat, g.conv(h, model.conv_body)], "0=0")
    for conv in model.up_convs():
        up = g.add("Interp", [h], "0=1 1=2.000000e+00 2=2.000000e+00")
        h = g.conv(up, conv, leaky=True)
    h = g.conv(h, model.conv_hr, leaky=True)
    g.conv(h, model.conv_last, output="output")
    return g.write(path)


def write_compact(model: SRVGGNetCompact, path: Path, fp16: bool = True) -> Path:
    """``model`` as ncnn files (with its final bicubic resize if it has one)."""
    g = _Graph(fp16)
    cfg = model.config
    layers = list(model.body)
    h = "data"
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            h = g.conv(h, layer)
        else:
            assert isinstance(layer, nn.PReLU)
            h = g.prelu(h, layer)
    shuffled = g.add("PixelShuffle", [h], f"0={cfg.upscale}")
    base = g.add("Interp", ["data"], f"0=1 1={cfg.upscale:.6e} 2={cfg.upscale:.6e}")
    resize = cfg.output_scale and cfg.output_scale != cfg.upscale
    out = g.add("BinaryOp", [shuffled, base], "0=0", output="" if resize else "output")
    if resize:
        f = cfg.output_scale / cfg.upscale
        g.add("Interp", [out], f"0=3 1={f:.6e} 2={f:.6e}", output="output")
    return g.write(path)


def run_ncnn(param: Path, image: np.ndarray) -> np.ndarray:
    """ncnn's own CPU inference (fp32 everywhere) of a (C, H, W) float32 image."""
    import ncnn

    net = ncnn.Net()
    for option in (
        "use_vulkan_compute",
        "use_fp16_storage",
        "use_fp16_arithmetic",
        "use_fp16_packed",
        "use_bf16_storage",
    ):
        setattr(net.opt, option, False)
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(param.with_suffix(".bin"))) == 0
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(np.ascontiguousarray(image, dtype=np.float32)))
    status, out = extractor.extract("output")
    assert status == 0
    return np.array(out)


def run_ours(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Our network on the same (C, H, W) image."""
    with torch.no_grad():
        return model(torch.from_numpy(image)[None])[0].numpy()
