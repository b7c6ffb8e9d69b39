"""Training losses of ESRGAN (Wang et al. 2018, sections 3.2-3.3).

- ``ragan_discriminator_loss`` / ``ragan_generator_loss``: the relativistic average GAN losses of
  Eq. 1-2 (with the paper's typo fixed: ``log(1 - D)``), on raw discriminator logits, weighted as
  the authors' code (the ESRGAN release, BasicSR) computes them: terms averaged, not summed.
- ``PerceptualLoss``: L1 (or L2) between VGG19 features taken *before* the activation
  (conv5_4 by default), or between the outputs of any frozen feature network (e.g. MINC).
- ``l1_loss``: the pixel loss, torch's own.

Nothing heavy happens at import: the VGG19 is built when a ``PerceptualLoss`` is created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from training.errors import TrainingError

l1_loss = F.l1_loss
"""The pixel loss of both training stages (mean absolute error)."""

VGG19_IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
"""File name of torchvision's ``VGG19_Weights.IMAGENET1K_V1`` in the torch hub cache."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_LAYER_WEIGHTS: Mapping[str, float] = {"conv5_4": 1.0}
"""The paper's perceptual loss: conv5_4 before its ReLU (``vgg19().features[:35]``)."""

_VGG19_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
"""(channels, number of 3x3 convs) per block of VGG19 ("configuration E")."""

_GET_IMAGENET_HINT = (
    'run once with internet: python -c "import torchvision; '
    "torchvision.models.vgg19(weights='IMAGENET1K_V1')\", or pass weights=<path to a VGG19 "
    "state dict (.pth or .safetensors)>"
)


# --------------------------------------------------------------------------------------------
# Relativistic average GAN (Eq. 1-2)
# --------------------------------------------------------------------------------------------


def _relativistic_logits(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``C(x_r) - mean C(x_f)`` and ``C(x_f) - mean C(x_r)``, means over the batch (dim 0)."""
    if real_logits.ndim == 0 or fake_logits.ndim == 0:
        raise ValueError("RaGAN logits need a batch dimension, got a 0-d tensor")
    if real_logits.shape[1:] != fake_logits.shape[1:]:
        raise ValueError(
            f"real and fake logits differ in shape beyond the batch: "
            f"{tuple(real_logits.shape)} vs {tuple(fake_logits.shape)}"
        )
    if real_logits.shape[0] == 0 or fake_logits.shape[0] == 0:
        raise ValueError("RaGAN logits need at least one sample")
    real_rel = real_logits - fake_logits.mean(dim=0, keepdim=True)
    fake_rel = fake_logits - real_logits.mean(dim=0, keepdim=True)
    return real_rel, fake_rel


def _bce(logits: Tensor, target: float) -> Tensor:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against a constant label, stable for any logit."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def ragan_discriminator_terms(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """The real and fake halves of the RaGAN discriminator loss (see ``ragan_discriminator_loss``)."""
    real_rel, _ = _relativistic_logits(real_logits, fake_logits.detach())
    _, fake_rel = _relativistic_logits(real_logits.detach(), fake_logits)
    return 0.5 * _bce(real_rel, 1.0), 0.5 * _bce(fake_rel, 0.0)


def ragan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """RaGAN discriminator loss as the authors' code computes it (Eq. 1, halved, detached means).

    ``0.5 * BCE(C(x_r) - mean C(x_f), 1) + 0.5 * BCE(C(x_f) - mean C(x_r), 0)`` where each mean is
    *detached*: the real term's gradient reaches D only through ``C(x_r)`` and the fake term's only
    through ``C(x_f)``, as in BasicSR's ``ESRGANModel`` (which splits the two backward passes for
    distributed training). The value is half of Eq. 1's sum. Means are over the batch dimension
    (one number for ``(N, 1)`` logits, one per location for patch logits); the fake images are
    detached from the generator by the caller. Pure function: logits in, scalar out.
    """
    real_term, fake_term = ragan_discriminator_terms(real_logits, fake_logits)
    return real_term + fake_term


def ragan_generator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """RaGAN generator loss as the authors compute it: the *mean* of Eq. 2's two terms.

    ``(BCE(C(x_r) - mean C(x_f), 0) + BCE(C(x_f) - mean C(x_r), 1)) / 2``: the ESRGAN release and
    BasicSR average the two terms, so the paper's lambda = 5e-3 applies to this mean (summing them
    doubles the adversarial weight). Unlike a standard GAN both terms carry gradient to the
    generator (the real term through ``mean C(x_f)``). In practice D is frozen for this step and
    ``real_logits = D(hr).detach()``, while ``fake_logits = D(G(lr))`` keeps its graph.
    """
    real_rel, fake_rel = _relativistic_logits(real_logits, fake_logits)
    return (_bce(real_rel, 0.0) + _bce(fake_rel, 1.0)) / 2


# --------------------------------------------------------------------------------------------
# VGG19 feature extractor
# --------------------------------------------------------------------------------------------


def _vgg19_layer_names() -> list[str]:
    """Names of the layers of torchvision's ``vgg19().features``, in order (conv1_1 ... pool5)."""
    names: list[str] = []
    for block, (_, num_convs) in enumerate(_VGG19_BLOCKS, start=1):
        for k in range(1, num_convs + 1):
            names += [f"conv{block}_{k}", f"relu{block}_{k}"]
        names.append(f"pool{block}")
    return names


VGG19_LAYERS: Mapping[str, int] = {name: i for i, name in enumerate(_vgg19_layer_names())}
"""Layer name -> index in ``vgg19().features``: conv5_4 is 34 (pre-activation), relu5_4 is 35."""


def imagenet_vgg19_path() -> Path:
    """Where torchvision caches the ImageNet VGG19 weights; read at call time (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_IMAGENET_FILE


def build_vgg19_features(num_layers: int = len(VGG19_LAYERS), seed: int = 0) -> nn.Sequential:
    """Build the first ``num_layers`` of ``vgg19().features`` with seeded random weights.

    Same layer indices and parameter names as torchvision, but ReLUs are not in-place (an in-place
    ReLU would overwrite a captured pre-activation feature) and there is no classifier. The
    initialisation (Kaiming-normal fan-out, zero bias, as torchvision's) uses a private RNG, so
    building never touches the global one.
    """
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch, num_convs in _VGG19_BLOCKS:
        for _ in range(num_convs):
            conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, device="meta")  # no default init
            layers += [conv, nn.ReLU(inplace=False)]
            in_ch = out_ch
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    features = nn.Sequential(*layers[:num_layers]).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(
                module.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return features


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message squeezed onto one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    """Read a state dict from ``.safetensors`` or, safely (``weights_only``), from ``.pth``/``.pt``."""
    if not path.is_file():
        raise TrainingError(f"VGG weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, unsafe pickle, ...: one clear line for the user
        raise TrainingError(f"cannot read VGG weights {path}: {_one_line(exc)}") from exc
    if not isinstance(state, Mapping):
        raise TrainingError(f"VGG weights {path} hold a {type(state).__name__}, not a state dict")
    return state


def _load_vgg_weights(features: nn.Sequential, state: Mapping[str, Tensor], source: str) -> None:
    """Copy VGG19 feature weights (keys ``features.N.*`` or ``N.*``) into a truncated VGG."""
    kept: dict[str, Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.").removeprefix("features.")
        index = key.split(".", 1)[0]
        if index.isdigit() and int(index) < len(features):
            kept[key] = value
    missing = sorted(set(features.state_dict()) - set(kept))
    if missing:
        raise TrainingError(
            f"{source} is not a VGG19 state dict: missing {', '.join(missing[:4])}"
            + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        )
    try:
        features.load_state_dict(kept)
    except RuntimeError as exc:
        raise TrainingError(f"{source} does not fit VGG19: {_one_line(exc)}") from exc


def _vgg19_for(
    num_layers: int, weights: str | os.PathLike[str], seed: int
) -> tuple[nn.Sequential, str]:
    """Build a truncated VGG19 with the requested weights; return it and a label of the source."""
    features = build_vgg19_features(num_layers, seed=seed)
    if weights == "random":
        return features, "random"
    if weights == "imagenet":
        path = imagenet_vgg19_path()
        if not path.is_file():
            raise TrainingError(
                f"VGG19 ImageNet weights not in the torch hub cache ({path}); {_GET_IMAGENET_HINT}"
            )
        _load_vgg_weights(features, _read_state_dict(path), f"VGG19 weights {path}")
        return features, "imagenet"
    path = Path(weights)
    _load_vgg_weights(features, _read_state_dict(path), f"VGG weights {path}")
    return features, str(path)


# --------------------------------------------------------------------------------------------
# Perceptual loss
# --------------------------------------------------------------------------------------------


class PerceptualLoss(nn.Module):
    """L1/L2 distance between frozen-network features of SR and HR (ESRGAN section 3.3).

    By default VGG19 conv5_4 *before* its ReLU, inputs in [0, 1] normalised with ImageNet mean/std.
    ``layer_weights`` maps layer names (``conv1_1``..``conv5_4``, or ``relu1_1``..``relu5_4`` for
    the after-activation variant of the ablation) to weights; the VGG is cut after the deepest one.
    ``weights``: ``"imagenet"`` (torchvision's IMAGENET1K_V1 from the torch hub cache only, never
    downloaded), a path to a state dict (``.pth``/``.pt``/``.safetensors``), or ``"random"``: a
    seeded, deterministic initialisation that is only a stand-in (tests, offline smoke runs), not a
    meaningful perceptual loss. ``weights_source`` labels which one was used, for logs and metadata.
    ``feature_extractor``: any module (e.g. a MINC-fine-tuned VGG) used instead of VGG19; it is
    called directly on the inputs (no normalisation; wrap it if it needs some) and its output
    compared; ``layer_weights`` and ``weights`` do not apply then. The extractor is frozen and
    always kept in eval mode.
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float] | None = None,
        criterion: str = "l1",
        weights: str | os.PathLike[str] = "imagenet",
        feature_extractor: nn.Module | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "l2"):
            raise ValueError(f"criterion must be 'l1' or 'l2', got {criterion!r}")
        self.criterion = criterion
        if feature_extractor is not None:
            if layer_weights is not None:
                raise ValueError(
                    "layer_weights applies to the built-in VGG19, not a custom feature_extractor"
                )
            self.layer_weights: dict[str, float] = {"output": 1.0}
            self._index_to_name: dict[int, str] = {}
            self.extractor = feature_extractor
            self.weights_source = f"custom:{type(feature_extractor).__name__}"
        else:
            self.layer_weights = _check_layer_weights(layer_weights)
            self._index_to_name = {VGG19_LAYERS[name]: name for name in self.layer_weights}
            num_layers = max(self._index_to_name) + 1
            self.extractor, self.weights_source = _vgg19_for(num_layers, weights, seed)
        self.uses_vgg = feature_extractor is None
        self.extractor.requires_grad_(False)
        self.extractor.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Switch mode like any module, but keep the frozen feature network in eval mode."""
        super().train(mode)
        self.extractor.eval()
        return self

    def extract_features(self, images: Tensor) -> dict[str, Tensor]:
        """Features of ``images`` (N, 3, H, W) in [0, 1], keyed by layer name ("output" if custom)."""
        if not self.uses_vgg:
            return {"output": self.extractor(images)}
        mean: Tensor = self.mean  # type: ignore[assignment]  # registered buffers
        std: Tensor = self.std  # type: ignore[assignment]
        x = (images - mean) / std
        features: dict[str, Tensor] = {}
        layers: nn.Sequential = self.extractor  # type: ignore[assignment]
        for index, layer in enumerate(layers):
            x = layer(x)
            if index in self._index_to_name:
                features[self._index_to_name[index]] = x
        return features

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        """Weighted sum over layers of the L1/L2 distance between SR and HR features (HR detached)."""
        if sr.shape != hr.shape:
            raise ValueError(f"SR and HR shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
        sr_features = self.extract_features(sr)
        with torch.no_grad():
            hr_features = self.extract_features(hr.detach())
        distance = F.l1_loss if self.criterion == "l1" else F.mse_loss
        total = sr.new_zeros(())
        for name, weight in self.layer_weights.items():
            total = total + weight * distance(sr_features[name], hr_features[name])
        return total


def _check_layer_weights(layer_weights: Mapping[str, float] | None) -> dict[str, float]:
    """Validate VGG19 layer names; ``None`` means the paper's ``{"conv5_4": 1.0}``."""
    chosen = dict(DEFAULT_LAYER_WEIGHTS if layer_weights is None else layer_weights)
    if not chosen:
        raise ValueError(
            "layer_weights is empty: name at least one VGG19 layer, e.g. {'conv5_4': 1.0}"
        )
    unknown = [name for name in chosen if name not in VGG19_LAYERS]
    if unknown:
        raise ValueError(
            f"unknown VGG19 layer {unknown[0]!r}; use conv1_1..conv5_4 (before ReLU) "
            f"or relu1_1..relu5_4 (after)"
        )
    return chosen
