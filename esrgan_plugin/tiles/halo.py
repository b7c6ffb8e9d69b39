"""The halo a network needs for seamless tiles: measured once per model, cached by weights hash.

A tile edge replaces everything beyond it by the network's zero padding. The probe runs the
network (fp32) on natural photo crops twice: whole, and with the top-left part cut away, and
records the largest output error (outputs clamped to [0, 1], as images are) against an output
pixel's distance, in input pixels, to the nearest cut edge. The cut is a corner because a tile's
corner pixels see two cut edges at once (on RealESRGAN_x4plus their error is 2-3x a single
edge's). The halo is the smallest distance beyond which every measured error is within the
bound (``HALO_BOUND``, 0.5/255), rounded up to ``HALO_STEP``. The probe grows until the cut-away
part is well wider than the halo it finds (or reaches the receptive radius, where tiles are
exact), so influence from further away is not missed on these photos.

The result is looked up, in order: in this process, in the table shipped with the package
(``weights/halos.json``, measured by this code for the shipped and catalogued models), in the
user's cache folder (``$ESRGAN_CACHE_DIR`` or ``$XDG_CACHE_HOME/esrgan-pipelines``), and only
then measured and written to that cache (atomically; a read-only or corrupt cache is ignored).
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from esrgan_plugin.arch.registry import model_needs
from esrgan_plugin.cache import HALOS, entry_path, load, store, weights_sha256
from esrgan_plugin.tiles.grid import round_up

log = logging.getLogger(__name__)

HALO_BOUND = 0.5 / 255
"""Largest max-abs error (in [0, 1] units) the default halo allows on the probe photos.

Half of 1/255, as a margin for images other than the probe's: on RealESRGAN_x4plus the error
at a given halo varies about 2x between photos."""

HALO_STEP = 8
"""Halos are rounded up to a multiple of this (and of the network's unshuffle factor)."""

PROBE_VERSION = 1
"""Bumped when the probe changes, so that cached results of an older probe are re-measured."""

_FIRST_REACH = 32
_MAX_REACH = 256
_REACH_MARGIN = 0.75
"""The halo found must be at most this fraction of the probe's cut-away width to be accepted."""

_PHOTOS = (("astronaut", 60, 120), ("coffee", 100, 200), ("chelsea", 50, 100))
"""scikit-image photos (inside its wheel) and the top-left corner of each probe crop."""

Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class HaloMeasurement:
    """What the probe found for one model: the halo, and the error profile behind it."""

    halo: int
    bound: float
    reach: int
    """Distances 0 .. reach - 1 from a cut edge were measured."""
    exact: bool
    """True when the halo is the receptive radius (tiles then equal the whole image)."""
    profile: tuple[float, ...]
    """Largest error at each distance or beyond (non-increasing), in [0, 1] units."""
    weights_sha256: str
    probe_version: int = PROBE_VERSION

    def error_at(self, halo: int) -> float | None:
        """The probe's largest error with this halo; 0 from the receptive radius; None if unmeasured."""
        if self.exact and halo >= self.halo:
            return 0.0
        return self.profile[halo] if halo < len(self.profile) else None


def probe_photos(size: int, count: int = len(_PHOTOS)) -> list[torch.Tensor]:
    """``count`` natural ``size`` x ``size`` RGB crops (NCHW float in [0, 1]), tiled by mirroring when larger."""
    from skimage import data

    crops = []
    for name, top, left in _PHOTOS[:count]:
        photo = getattr(data, name)()
        photo = photo[top:, left:]
        reps = (-(-size // photo.shape[0]), -(-size // photo.shape[1]))
        if reps != (1, 1):
            photo = np.pad(
                photo,
                ((0, photo.shape[0] * (reps[0] - 1)), (0, photo.shape[1] * (reps[1] - 1)), (0, 0)),
                mode="symmetric",
            )
        crop = photo[:size, :size].astype(np.float32) / 255.0
        crops.append(torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None])
    return crops


def cut_error_profile(network: Network, image: torch.Tensor, scale: int, cut: int) -> np.ndarray:
    """Largest error against the whole-image output, per LR distance to the nearest cut edge.

    ``image`` is NCHW; the probe input is ``image[..., cut:, cut:]`` (top and left edges cut,
    bottom and right edges the image's own). Entry ``d`` is the largest error of any output pixel
    whose source pixel lies ``d`` input pixels inside the cut.
    """
    with torch.no_grad():
        whole = network(image).float().clamp(0.0, 1.0)[..., cut * scale :, cut * scale :]
        part = network(image[..., cut:, cut:]).float().clamp(0.0, 1.0)
    err = (whole - part).abs().amax(dim=(0, 1)).cpu().numpy()
    rows = np.arange(err.shape[0]) // scale
    cols = np.arange(err.shape[1]) // scale
    distance = np.minimum(rows[:, None], cols[None, :])
    profile = np.zeros(int(distance.max()) + 1)
    np.maximum.at(profile, distance.ravel(), err.ravel())
    return profile


def halo_for_bound(profile: np.ndarray, bound: float) -> int | None:
    """The smallest ``h`` with every ``profile[d] <= bound`` for ``d >= h``; None if none is."""
    above = np.nonzero(profile > bound)[0]
    halo = 0 if above.size == 0 else int(above[-1]) + 1
    return halo if halo < len(profile) else None


def measure_halo(
    module: nn.Module,
    bound: float = HALO_BOUND,
    device: torch.device | None = None,
    photos: int = len(_PHOTOS),
) -> HaloMeasurement:
    """Run the probe on ``module`` in fp32 (on ``device``, default the CPU); see the module docstring."""
    needs = model_needs(module)
    device = device or torch.device("cpu")
    step = max(HALO_STEP, needs.multiple_of)
    radius = round_up(needs.receptive_radius, step)
    net = _fp32_network(module, device)
    reach = min(round_up(_FIRST_REACH, step), radius)
    while True:
        profile = np.zeros(reach)
        for image in probe_photos(2 * reach, photos):
            found = cut_error_profile(net, image.to(device), needs.scale, reach)
            profile = np.maximum(profile, found[:reach])
        tail = np.maximum.accumulate(profile[::-1])[::-1]
        halo = halo_for_bound(tail, bound)
        accepted = halo is not None and halo <= _REACH_MARGIN * reach
        if accepted or reach >= min(radius, _MAX_REACH):
            break
        reach = min(2 * reach, radius, round_up(_MAX_REACH, step))
    exact = False
    if not accepted:
        if reach >= radius:  # the whole receptive field was probed: exact tiles
            halo, exact = radius, True
        else:
            halo = reach
            log.warning(
                "the probe's error did not fall to %.2f/255 within %d input pixels; using halo %d",
                bound * 255,
                reach,
                reach,
            )
    assert halo is not None
    return HaloMeasurement(
        halo=min(round_up(halo, step), radius),
        bound=bound,
        reach=reach,
        exact=exact,
        profile=tuple(float(v) for v in tail),
        weights_sha256=weights_sha256(module),
    )


# --------------------------------------------------------------------------- caches


_MEMO: weakref.WeakKeyDictionary[nn.Module, dict[float, HaloMeasurement]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def model_halo(
    module: nn.Module, bound: float = HALO_BOUND, device: torch.device | None = None
) -> HaloMeasurement:
    """The halo measurement for ``module``: from memory, the shipped table, the cache, or measured."""
    with _LOCK:
        known = _MEMO.get(module, {}).get(bound)
        if known is not None:
            return known
        digest = weights_sha256(module)
        found = _shipped(digest, bound) or _read_cached(cache_path(digest, bound), digest, bound)
        if found is None:
            log.info("measuring the halo this model needs for seamless tiles (once per model)")
            found = measure_halo(module, bound, device)
            _write_cached(cache_path(digest, bound), found)
        _MEMO.setdefault(module, {})[bound] = found
        return found


def cache_path(digest: str, bound: float) -> Path:
    """Where the measurement for these weights and this bound is cached."""
    key = HALOS.key(digest, f"bound={bound!r}", f"probe={PROBE_VERSION}")
    return entry_path(HALOS, key, digest[:16])


def _from_json(data: object, digest: str, bound: float) -> HaloMeasurement | None:
    """A measurement from parsed JSON, or None when it is malformed or for other weights/bound."""
    try:
        assert isinstance(data, dict)
        found = HaloMeasurement(
            halo=int(data["halo"]),
            bound=float(data["bound"]),
            reach=int(data["reach"]),
            exact=bool(data["exact"]),
            profile=tuple(float(v) for v in data["profile"]),
            weights_sha256=str(data["weights_sha256"]),
            probe_version=int(data["probe_version"]),
        )
    except (AssertionError, KeyError, TypeError, ValueError):
        return None
    ok = (
        found.weights_sha256 == digest
        and abs(found.bound - bound) < 1e-12
        and found.probe_version == PROBE_VERSION
        and found.halo >= 0
        and len(found.profile) == found.reach
    )
    return found if ok else None


def _read_cached(path: Path, digest: str, bound: float) -> HaloMeasurement | None:
    return load(path, lambda entry: _from_json(json.loads(entry.read_text()), digest, bound))


def _write_cached(path: Path, found: HaloMeasurement) -> None:
    store(path, lambda tmp: tmp.write_text(json.dumps(asdict(found), indent=1)))


def _shipped(digest: str, bound: float) -> HaloMeasurement | None:
    """The measurement shipped for these weights (``weights/halos.json``), if any."""
    try:
        text = (resources.files("esrgan_plugin") / "weights" / "halos.json").read_text()
        table = json.loads(text)
    except (OSError, ValueError):
        return None
    entries = table.get("models", []) if isinstance(table, dict) else []
    for entry in entries:
        found = _from_json(entry, digest, bound)
        if found is not None:
            return found
    return None


def _fp32_network(module: nn.Module, device: torch.device) -> Network:
    """``module`` as an fp32 function on ``device`` (a copy when it lives elsewhere)."""
    first = next(module.parameters(), None)
    on_device = first is not None and first.device == device and first.dtype == torch.float32
    if module.training or not on_device:
        import copy

        module = copy.deepcopy(module).to(device, torch.float32).eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x.to(device, torch.float32))

    return run
