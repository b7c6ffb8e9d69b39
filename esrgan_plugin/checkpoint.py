"""Safe checkpoint reading, layout detection, hyperparameter inference and safetensors writing.

Three RRDBNet key layouts exist in the wild; each is recognised by explicit key rules and
renamed to the canonical (BasicSR) layout, from which every hyperparameter is read off the
tensor shapes. ``.pth``/``.pt`` files go through ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from esrgan_plugin.arch.compact import CompactConfig
from esrgan_plugin.arch.needs import model_needs
from esrgan_plugin.arch.registry import ModelConfig, build_network
from esrgan_plugin.arch.rrdbnet import RRDBNetConfig
from esrgan_plugin.arch.srresnet import SRResNetConfig
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.formats.ncnn import is_ncnn_path
from esrgan_plugin.formats.ncnn_models import read_ncnn_state_dict
from esrgan_plugin.model_cache import cached_conversion
from pipelines.errors import first_line
from pipelines.io.atomic import atomic_target

StateDict = dict[str, torch.Tensor]

FORMAT_TAG = "esrgan-pipelines/1"
"""Written into the metadata of every safetensors file this project saves."""

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict")


# --------------------------------------------------------------------------- reading files


def read_state_dict(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Read tensors and metadata from ``.safetensors`` or (safely) ``.pth``/``.pt``.

    Unwraps ``{"params_ema": ...}`` (preferred) / ``{"params": ...}`` and strips the
    ``module.`` prefix that ``DataParallel`` adds.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    if is_ncnn_path(path):
        state, metadata = _read_ncnn(path)
    elif path.suffix.lower() == ".safetensors":
        state, metadata = _read_safetensors(path)
    elif path.suffix.lower() in (".pth", ".pt", ".ckpt", ".bin"):
        state, metadata = _read_torch(path), {}  # type: ignore[assignment]  # checked below
    else:
        raise CheckpointError(
            f"{path}: unsupported model file extension {path.suffix!r}; expected .safetensors, .pth, .pt or an ncnn .param"
        )
    return normalise_state_dict(state, source=str(path)), metadata


def _read_ncnn(path: Path) -> tuple[StateDict, dict[str, str]]:
    """An ncnn model's canonical tensors, converted once and then read from the model cache."""
    sources = [path.with_suffix(".param"), path.with_suffix(".bin")]
    if not all(p.is_file() for p in sources):
        return read_ncnn_state_dict(str(path))  # reports which file is missing
    return cached_conversion(sources, lambda: read_ncnn_state_dict(str(path)))


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    try:
        state = load_file(str(path))
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path}: truncated or corrupt safetensors file ({first_line(exc)})"
        ) from None
    return state, dict(header.get("__metadata__") or {})


def _read_torch(path: Path) -> object:
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled Python objects other than "
            f"tensors ({_pickle_reason(exc)}); only weights-only checkpoints are loaded, never "
            "arbitrary pickles"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint ({first_line(exc)})"
        ) from None
    except Exception as exc:  # a malformed pickle stream trips torch's unpickler (IndexError, ...)
        raise CheckpointError(
            f"{path}: corrupt checkpoint: not a valid pickle stream "
            f"({type(exc).__name__}: {first_line(exc)[:160]})"
        ) from None


def _pickle_reason(exc: BaseException) -> str:
    """What the weights-only unpickler refused, e.g. ``unsupported GLOBAL posix.system``."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"unsupported GLOBAL {found.group(1)}"
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip()
        and not line.startswith(("Weights only load failed", "Check the documentation"))
    ]
    reason = lines[0] if lines else type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117].rsplit(" ", 1)[0] + "..."


def normalise_state_dict(obj: object, source: str = "checkpoint") -> StateDict:
    """Unwrap training-framework containers and strip ``module.`` prefixes."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{source}: expected a state dict of tensors, found {type(obj).__name__}"
        )
    state: StateDict = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. an 'iteration' counter saved beside the weights
        name = str(key)
        while name.startswith("module."):
            name = name[len("module.") :]
        state[name] = value
    if not state:
        raise CheckpointError(f"{source}: the checkpoint holds no tensors")
    return state


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """A known key layout: how to recognise it and how to rename it to the canonical one."""

    name: str
    architecture: str
    description: str
    required_keys: tuple[str, ...]
    to_canonical: Callable[[StateDict], StateDict]

    def matches(self, state: Mapping[str, torch.Tensor]) -> bool:
        return all(key in state for key in self.required_keys)


def _rename(state: StateDict, rules: list[tuple[str, str]]) -> StateDict:
    """Apply the first matching regex rename of ``rules`` to every key (unmatched keys kept)."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out: StateDict = {}
    for key, value in state.items():
        for pattern, replacement in compiled:
            new_key, count = pattern.subn(replacement, key)
            if count:
                out[new_key] = value
                break
        else:
            out[key] = value
    return out


def _old_to_canonical(state: StateDict) -> StateDict:
    """SRGAN-style ``model.N`` Sequential of the original ESRGAN release."""
    sub_indices = {
        int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))
    }
    num_blocks = max(sub_indices) + 1 if sub_indices else 0
    top = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.(weight|bias)$", k))}
    )
    last = top[-1] if top else 0
    num_upsample, rem = divmod(last - 4, 3)
    if rem or num_upsample < 0:
        raise CheckpointError(
            f"old-layout checkpoint has an unexpected last layer index model.{last} "
            "(expected model.4 + 3 per up-step)"
        )
    rules = [
        (r"^model\.0\.", "conv_first."),
        (r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
        (rf"^model\.1\.sub\.{num_blocks}\.", "conv_body."),
        (rf"^model\.{3 * num_upsample + 2}\.", "conv_hr."),
        (rf"^model\.{3 * num_upsample + 4}\.", "conv_last."),
    ]
    rules += [(rf"^model\.{3 * i}\.", f"conv_up{i}.") for i in range(1, num_upsample + 1)]
    return _rename(state, rules)


def _esrgan_repo_to_canonical(state: StateDict) -> StateDict:
    return _rename(
        state,
        [
            (r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."),
            (r"^trunk_conv\.", "conv_body."),
            (r"^upconv(\d)\.", r"conv_up\1."),
            (r"^HRconv\.", "conv_hr."),
        ],
    )


def _identity(state: StateDict) -> StateDict:
    return dict(state)


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "old",
        "RRDBNet",
        "original ESRGAN release: model.0, model.1.sub.N.RDBk.convj.0, model.3, ...",
        ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
        _old_to_canonical,
    ),
    Layout(
        "esrgan",
        "RRDBNet",
        "xinntao/ESRGAN repo: conv_first, RRDB_trunk.N.RDBk.convj, trunk_conv, upconvN, HRconv",
        ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight"),
        _esrgan_repo_to_canonical,
    ),
    Layout(
        "basicsr",
        "RRDBNet",
        "BasicSR / Real-ESRGAN: conv_first, body.N.rdbk.convj, conv_body, conv_upN, conv_hr",
        ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight"),
        _identity,
    ),
    Layout(
        "compact",
        "SRVGGNetCompact",
        "Real-ESRGAN SRVGGNetCompact: body.0 conv, body.1 PReLU, ..., body.2n+2 last conv",
        ("body.0.weight", "body.1.weight", "body.2.weight"),
        _identity,
    ),
    Layout(
        "srresnet",
        "SRResNet",
        "this project's SRResNet: conv_first, body.N.conv1/conv2, upsample.N, conv_hr",
        ("conv_first.weight", "body.0.conv1.weight", "upsample.0.weight", "conv_hr.weight"),
        _identity,
    ),
)


def detect_layout(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> Layout:
    """The first layout whose required keys are all present; a clear error otherwise."""
    for layout in LAYOUTS:
        if layout.matches(state):
            return layout
    # An RRDBNet with zero blocks has no body keys; accept it as canonical.
    if {"conv_first.weight", "conv_body.weight", "conv_hr.weight", "conv_last.weight"} <= set(
        state
    ):
        return LAYOUTS[2]
    sample = ", ".join(_shown(k) for k in list(state)[:5])
    known = "; ".join(f"{lay.name} ({lay.description})" for lay in LAYOUTS)
    raise CheckpointError(
        f"{source}: not an ESRGAN-family checkpoint: unknown key layout (first keys: {sample}); known layouts: {known}"
    )


# --------------------------------------------------------------------------- inference of hyperparameters


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def infer_rrdbnet_config(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> RRDBNetConfig:
    """Read nf, nb, gc, up-steps, unshuffle factor and channel counts off canonical tensors."""
    try:
        first = state["conv_first.weight"]
        last = state["conv_last.weight"]
    except KeyError as exc:
        raise CheckpointError(f"{source}: missing key {exc.args[0]}") from None
    blocks = _indices(state, r"body\.(\d+)\.rdb1\.conv1\.weight$")
    if blocks != list(range(len(blocks))):
        raise CheckpointError(
            f"{source}: RRDB blocks are not numbered 0..N-1 (found {blocks[:8]}...)"
        )
    ups = _indices(state, r"conv_up(\d+)\.weight$")
    if ups != list(range(1, len(ups) + 1)):
        raise CheckpointError(f"{source}: up-step convs are not numbered 1..N (found {ups})")
    growth = int(state["body.0.rdb1.conv1.weight"].shape[0]) if blocks else 32
    first_in, out_ch = int(first.shape[1]), int(last.shape[0])
    unshuffle = 1
    for factor in (4, 2):
        if first_in == out_ch * factor * factor and 2 ** len(ups) >= factor:
            unshuffle = factor
            break
    try:
        return RRDBNetConfig(
            in_channels=first_in // unshuffle**2,
            out_channels=out_ch,
            num_features=int(first.shape[0]),
            num_blocks=len(blocks),
            growth_channels=growth,
            num_upsample=len(ups),
            unshuffle_factor=unshuffle,
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: inconsistent hyperparameters: {exc}") from None


def infer_compact_config(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint", output_scale: int = 0
) -> CompactConfig:
    """nf, number of convs and pixel-shuffle factor of an SRVGGNetCompact from its tensors."""
    convs = [
        i for i in _indices(state, r"body\.(\d+)\.weight$") if state[f"body.{i}.weight"].ndim == 4
    ]
    if not convs or convs != list(range(0, 2 * len(convs), 2)):
        raise CheckpointError(
            f"{source}: SRVGGNetCompact convs should be body.0, body.2, ..., found {convs[:8]}"
        )
    first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
    in_ch = int(first.shape[1])
    upscale = round((int(last.shape[0]) / in_ch) ** 0.5)
    if upscale < 1 or in_ch * upscale**2 != int(last.shape[0]):
        raise CheckpointError(
            f"{source}: the last conv's {int(last.shape[0])} outputs are not {in_ch} channels x "
            "a square pixel-shuffle factor"
        )
    try:
        return CompactConfig(
            in_channels=in_ch,
            out_channels=in_ch,
            num_features=int(first.shape[0]),
            num_convs=len(convs) - 2,
            upscale=upscale,
            output_scale=output_scale,
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: inconsistent hyperparameters: {exc}") from None


def infer_srresnet_config(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> SRResNetConfig:
    """Hyperparameters of an SRResNet from its tensors (scale from the up-step shapes)."""
    steps = _indices(state, r"upsample\.(\d+)\.weight$")
    nf = int(state["conv_first.weight"].shape[0])
    factors = [round((int(state[f"upsample.{i}.weight"].shape[0]) // nf) ** 0.5) for i in steps]
    scale = 1
    for f in factors:
        scale *= f
    try:
        return SRResNetConfig(
            in_channels=int(state["conv_first.weight"].shape[1]),
            out_channels=int(state["conv_last.weight"].shape[0]),
            num_features=nf,
            num_blocks=len(_indices(state, r"body\.(\d+)\.conv1\.weight$")),
            scale=scale,
            batch_norm=any(k.startswith("body.0.bn1.") for k in state),
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: inconsistent hyperparameters: {exc}") from None


# --------------------------------------------------------------------------- loading models


@dataclass
class LoadedModel:
    """A ready network plus what was learnt about it from its file."""

    module: nn.Module
    layout: str
    config: ModelConfig
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def architecture(self) -> str:
        return type(self.module).__name__

    @property
    def scale(self) -> int:
        return int(self.config.scale)

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def out_channels(self) -> int:
        return self.config.out_channels

    @property
    def multiple_of(self) -> int:
        """Input sizes the network handles natively (it pads otherwise)."""
        return model_needs(self.module).multiple_of

    def describe(self) -> dict[str, object]:
        """JSON-ready summary, as printed by ``esrgan info --json``."""
        cfg = self.config
        return {
            "architecture": self.architecture,
            "layout": self.layout,
            "scale": self.scale,
            "num_blocks": cfg.num_blocks,
            "num_features": cfg.num_features,
            "growth_channels": getattr(cfg, "growth_channels", None),
            "in_channels": cfg.in_channels,
            "out_channels": cfg.out_channels,
            "num_upsample": getattr(cfg, "num_upsample", None),
            "unshuffle_factor": getattr(cfg, "unshuffle_factor", None),
            "num_convs": getattr(cfg, "num_convs", None),
            "upscale": getattr(cfg, "upscale", None),
            "receptive_radius": model_needs(self.module).receptive_radius,
            "parameters": sum(p.numel() for p in self.module.parameters()),
            "metadata": dict(self.metadata),
            "source": self.source,
        }


ARCHITECTURES: dict[str, Callable[[StateDict, str, Mapping[str, str]], ModelConfig]] = {
    "RRDBNet": lambda state, source, _meta: infer_rrdbnet_config(state, source),
    "SRResNet": lambda state, source, _meta: infer_srresnet_config(state, source),
    "SRVGGNetCompact": lambda state, source, meta: infer_compact_config(
        state, source, _int_meta(meta, "output_scale")
    ),
}
"""Architecture name (of a ``Layout``) -> hyperparameters read off canonical tensors."""


def build_from_state_dict(
    state: StateDict, metadata: Mapping[str, str] | None = None, source: str = "checkpoint"
) -> LoadedModel:
    """Detect the layout, rename to canonical keys, infer hyperparameters and load strictly."""
    metadata = dict(metadata or {})
    layout = detect_layout(state, source)
    canonical = layout.to_canonical(state)
    _check_conv_weights(canonical, layout.architecture, source)
    try:
        config = ARCHITECTURES[layout.architecture](canonical, source, metadata)
    except (IndexError, KeyError, ZeroDivisionError) as exc:  # a safety net behind the checks
        raise CheckpointError(
            f"{source}: tensor shapes do not fit a {layout.architecture} "
            f"({type(exc).__name__}: {first_line(exc)})"
        ) from None
    with torch.device("meta"):  # shapes only: a file cannot make us allocate a huge network
        skeleton = build_network(config)
    _check_strict(skeleton, canonical, source)
    tensors = {k: v.float() for k, v in canonical.items()}
    module = skeleton  # no weight initialisation to throw away: every tensor comes from the file
    module.load_state_dict(tensors, strict=True, assign=True)
    if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
        module = build_network(config)  # a tensor the file does not hold: build it for real
        module.load_state_dict(tensors, strict=True)
    module.eval().requires_grad_(False)
    return LoadedModel(module, layout.name, config, metadata, source)


def _int_meta(metadata: Mapping[str, str], key: str) -> int:
    """An integer metadata value (0 when absent), or a clear error."""
    value = metadata.get(key, "0")
    try:
        return int(value)
    except ValueError:
        raise CheckpointError(f"metadata {key}={value!r} is not a whole number") from None


_CONV_WEIGHTS = {  # the convolutions whose shapes the hyperparameters are read from
    "RRDBNet": re.compile(r"(conv_first|conv_last|body\.0\.rdb1\.conv1)\.weight$"),
    "SRResNet": re.compile(r"(conv_first|conv_last|upsample\.\d+)\.weight$"),
    "SRVGGNetCompact": re.compile(r"body\.0\.weight$"),
}


def _check_conv_weights(state: Mapping[str, torch.Tensor], architecture: str, source: str) -> None:
    """The convolution weights inference reads are non-empty 4-D tensors (others: strict check)."""
    pattern = _CONV_WEIGHTS[architecture]
    for key, tensor in state.items():
        if pattern.match(key) and (tensor.ndim != 4 or tensor.numel() == 0):
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(tensor.shape)}, expected a non-empty "
                "4-D convolution weight (out, in, kh, kw)"
            )


def _check_strict(module: nn.Module, state: StateDict, source: str) -> None:
    """``state`` has exactly ``module``'s keys, shapes and floating-point tensors."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing keys {_sample(missing)}")
        if extra:
            parts.append(f"unexpected keys {_sample(extra)}")
        raise CheckpointError(
            f"{source}: checkpoint does not match the inferred network: {'; '.join(parts)}"
        )
    for key, tensor in expected.items():
        if tensor.shape != state[key].shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
            )
        if tensor.is_floating_point() and not state[key].is_floating_point():
            # (integer buffers such as BN's num_batches_tracked may be stored in any dtype)
            raise CheckpointError(
                f"{source}: tensor {key} has dtype {state[key].dtype}, expected {tensor.dtype}"
            )


def _sample(keys: list[str], n: int = 4) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(_shown(k) for k in keys[:n]) + more


def _shown(key: str) -> str:
    """A tensor name for a one-line message: as is, or quoted when empty or not printable."""
    return key if key and key.isprintable() and key.strip() == key else repr(key)


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a checkpoint file (any supported layout) or a shipped model name, on the CPU."""
    from esrgan_plugin.zoo import resolve_model_path

    path = resolve_model_path(path)
    state, metadata = read_state_dict(path)
    loaded = build_from_state_dict(state, metadata, source=str(path))
    if metadata.get("source_format") == "ncnn":
        loaded.layout = "ncnn"
    return loaded


# --------------------------------------------------------------------------- writing


def model_metadata(model: nn.Module, extra: Mapping[str, object] | None = None) -> dict[str, str]:
    """Safetensors metadata (strings only) describing ``model``'s architecture."""
    config: Any = model.config
    meta = {"format": FORMAT_TAG, "architecture": type(model).__name__, "scale": str(config.scale)}
    meta.update({k: str(v) for k, v in config.to_dict().items()})
    meta["channels"] = f"{config.in_channels}->{config.out_channels}"
    for key, value in (extra or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return meta


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    extra_metadata: Mapping[str, object] | None = None,
) -> Path:
    """Write ``model`` as safetensors in the canonical layout, atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{path}: the project writes only .safetensors files")
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    save_state_dict(path, state, model_metadata(model, extra_metadata))
    return path


def save_state_dict(path: Path, state: StateDict, metadata: Mapping[str, str]) -> None:
    """Atomic safetensors write: a failure never leaves a half-written file at ``path``."""
    try:
        with atomic_target(path) as tmp:
            save_file(state, str(tmp), metadata=dict(metadata))
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
        reason = getattr(exc, "strerror", None) or first_line(exc).removeprefix(
            "Error while serializing: "
        )
        raise CheckpointError(
            f"{path}: cannot write model file ({reason}); any previous file is unchanged"
        ) from None
