"""Frames <-> arrays: RGB(A) uint8/uint16 arrays from decoded frames and frames to encode from arrays.

The conversion between Y'CbCr and R'G'B' uses one matrix and range in both directions, chosen
from the source's tags (:func:`conversion`): a round trip through an array keeps the colours a
player shows. When the source does not say which matrix it uses, the usual player convention
decides: BT.709 for frames at least 1280 wide or 720 high, BT.601 (SMPTE 170M) below, and the
output is tagged with the matrix (and, where the source left them unspecified, the primaries and
transfer) actually used, because a larger output would otherwise be guessed differently.
Primaries and transfer are never converted: HDR (PQ, HLG) samples pass through as coded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.io.video.probe import ColourTags

_UNSPECIFIED = 2
_RGB = 0
_BT709 = 1
_SMPTE170M = 6
_TV, _PC = 1, 2
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
"""AVColorSpace -> swscale's matrix (SWS_CS_*): the matrices swscale implements."""


@dataclass(frozen=True)
class Conversion:
    """How frames are converted: the Y'CbCr matrix and range used, and the tags written."""

    matrix: int
    range: int
    tags: ColourTags


def array_format(dtype: Any, channels: int) -> str:
    """The packed RGB format of an array: rgb24, rgba, rgb48le or rgba64le."""
    wide = np.dtype(dtype) == np.uint16
    if channels == 4:
        return "rgba64le" if wide else "rgba"
    return "rgb48le" if wide else "rgb24"


def is_rgb_format(pix_fmt: str) -> bool:
    """True for RGB pixel formats (gbrp, bgr0, bgra, rgb48le ...), which need no matrix."""
    import av

    return bool(av.VideoFormat(pix_fmt).is_rgb)


def conversion(tags: ColourTags, width: int, height: int, rgb_source: bool) -> Conversion:
    """The matrix and range for frames described by ``tags`` (see the module docstring).

    ``rgb_source`` is True when the source frames are RGB already: their Y'CbCr conversion, if
    any is needed on output, uses BT.709, tagged.
    """
    hd = width >= 1280 or height >= 720
    matrix = tags.matrix
    if rgb_source or matrix == _RGB:
        matrix = _BT709
    elif matrix not in _SWS_MATRIX:
        matrix = _BT709 if hd else _SMPTE170M
    guessed = tags.matrix in (_UNSPECIFIED, _RGB) or tags.matrix not in _SWS_MATRIX
    default_curve = _BT709 if matrix == _BT709 else _SMPTE170M
    out = ColourTags(
        primaries=default_curve if guessed and tags.primaries == _UNSPECIFIED else tags.primaries,
        transfer=default_curve if guessed and tags.transfer == _UNSPECIFIED else tags.transfer,
        matrix=matrix,
        range=tags.range if tags.range in (_TV, _PC) else _TV,
    )
    return Conversion(matrix=matrix, range=out.range, tags=out)


def _flags() -> Any:
    from av.video.reformatter import Interpolation

    return Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def frame_to_array(frame: Any, fmt: str, conv: Conversion) -> np.ndarray:
    """A decoded frame as an (H, W, C) array in the packed RGB format ``fmt``."""
    if is_rgb_format(frame.format.name):
        return np.asarray(frame.to_ndarray(format=fmt))
    rgb = frame.reformat(
        format=fmt,
        src_colorspace=_SWS_MATRIX[conv.matrix],
        src_color_range=_range_of(frame, conv),
        interpolation=_flags(),
    )
    return np.asarray(rgb.to_ndarray())


def _range_of(frame: Any, conv: Conversion) -> int:
    value = int(frame.color_range)
    return value if value in (_TV, _PC) else conv.range


def array_to_frame(array: np.ndarray, pix_fmt: str, conv: Conversion) -> Any:
    """A frame in ``pix_fmt`` (tagged with ``conv``) from an (H, W, 3 or 4) uint8/uint16 array."""
    import av

    array = np.ascontiguousarray(array)
    frame = av.VideoFrame.from_ndarray(array, format=array_format(array.dtype, array.shape[2]))
    if is_rgb_format(pix_fmt):
        out = frame.reformat(format=pix_fmt, interpolation=_flags())
        out.colorspace = _RGB
        out.color_range = _PC
    else:
        out = frame.reformat(
            format=pix_fmt,
            dst_colorspace=_SWS_MATRIX[conv.matrix],
            dst_color_range=conv.range,
            interpolation=_flags(),
        )
        out.colorspace = conv.tags.matrix
        out.color_range = conv.range
    out.color_primaries = conv.tags.primaries
    out.color_trc = conv.tags.transfer
    return out
