"""Encoder settings: what the user asks for (:class:`EncodeSettings`) and what is used (:class:`Encoding`).

Defaults are visually lossless and keep what the frames hold:

==============  =============================  ============================================
codec           default for                    defaults
==============  =============================  ============================================
libx264         .mp4 .mov .mkv .avi and others  crf 18, preset medium, yuv420p / yuv420p10le
libx265         (ask for it)                   crf 20, preset medium, yuv420p / yuv420p10le
libvpx-vp9      .webm                          crf 20 (constant quality), yuva420p for alpha
ffv1            (ask for it; .mkv)             lossless RGB: bgr0 / bgra, gbrp10le / gbrap10le ...
prores_ks       (ask for it; .mov)             profile hq yuv422p10le, 4444 yuva444p10le for alpha
gif             .gif                           a palette per frame, from lossless FFV1 segments
==============  =============================  ============================================

Input with more than 8 bits per sample is written with a 10-bit (ffv1: 10/12/16-bit) pixel
format; input with alpha gets the codec's alpha format, and a codec without one is refused
(unless ``pix_fmt`` names a format without alpha, which drops it on purpose). Frame sizes that
a subsampled pixel format cannot hold (an odd width or height for 4:2:0) are rounded *down* to
the next even size by dropping the last column or row; RGB and 4:4:4 formats keep odd sizes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.io.video.errors import VideoError, describe_av_error

DEFAULT_CODECS = {"webm": "libvpx-vp9"}
"""Default video codec by container (FFmpeg muxer name); every other container gets libx264."""

FALLBACK_CODEC = "libx264"

NO_TIMESTAMPS = ("avi",)
"""Muxers refused for output: they keep no presentation times (read from them is fine)."""

PALETTE_CONTAINERS = ("gif",)
"""Muxers written from lossless segments transcoded at the join (GIF: the gif encoder with a
palette per frame, :mod:`pipelines.io.video.palette`), not by copying the segments' packets."""


class EncodeSettings(BaseModel):
    """The encoder a video is written with; unset fields take the codec's documented default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    codec: str | None = Field(
        None,
        description="video encoder: libx264, libx265, libvpx-vp9, ffv1, prores_ks or any other FFmpeg "
        "encoder in this build; default libvpx-vp9 for .webm, libx264 otherwise",
    )
    crf: int | None = Field(
        None,
        ge=0,
        le=63,
        description="constant quality (lower is better): default 18 for libx264, 20 for libx265 and libvpx-vp9",
    )
    preset: str | None = Field(
        None,
        description="speed/size preset of libx264/libx265 (ultrafast ... veryslow); default medium",
    )
    pix_fmt: str | None = Field(
        None,
        description="pixel format written, e.g. yuv420p, yuv420p10le, yuv444p, gbrp; default: from the codec, "
        "the input's bit depth and alpha",
    )
    threads: int | None = Field(
        None, ge=1, le=64, description="encoder threads per segment; default min(cores, 8)"
    )
    options: dict[str, str] = Field(
        default_factory=dict, description="further encoder options, e.g. {tune: film}"
    )


@dataclass(frozen=True)
class CodecRule:
    """What a codec takes and its defaults (None: the codec has no such setting)."""

    crf: int | None = None
    crf_max: int = 51
    preset: str | None = None
    depth8: str = "yuv420p"
    depth10: str | None = "yuv420p10le"
    alpha8: str | None = None
    alpha10: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    lossless_rgb: bool = False


RULES: dict[str, CodecRule] = {
    "libx264": CodecRule(crf=18, preset="medium"),
    "libx265": CodecRule(crf=20, preset="medium", options={"x265-params": "log-level=error"}),
    "libvpx-vp9": CodecRule(
        crf=20,
        crf_max=63,
        depth10=None,
        alpha8="yuva420p",
        options={"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "2"},
    ),
    "ffv1": CodecRule(
        depth8="bgr0",
        depth10="gbrp10le",
        alpha8="bgra",
        alpha10="gbrap10le",
        options={"level": "3", "g": "1", "slicecrc": "1"},
        lossless_rgb=True,
    ),
    "prores_ks": CodecRule(
        depth8="yuv422p10le",
        depth10="yuv422p10le",
        alpha8="yuva444p10le",
        alpha10="yuva444p10le",
    ),
}

_FFV1_DEPTHS = {10: ("gbrp10le", "gbrap10le"), 12: ("gbrp12le", "gbrap12le")}


@dataclass(frozen=True)
class Encoding:
    """Settings resolved for one output: everything the encoder is opened with (JSON-ready)."""

    container: str
    codec: str
    pix_fmt: str
    options: dict[str, str]
    threads: int
    width: int
    height: int
    cropped: bool
    """True when the frames are cut to an even size for a subsampled pixel format."""
    keeps_alpha: bool

    def record(self) -> dict[str, Any]:
        """The settings as a JSON-ready mapping (part of a segment job's fingerprint)."""
        return {
            "container": self.container,
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "options": dict(sorted(self.options.items())),
            "threads": self.threads,
            "width": self.width,
            "height": self.height,
        }


def muxer_for(path: str | os.PathLike[str], codec: str | None = None) -> str:
    """The FFmpeg muxer chosen by ``path``'s suffix; :class:`VideoError` when there is none.

    With ``codec``, also checks that the container can hold that encoder's video (as FFmpeg
    itself answers it: containers without a codec table accept anything).
    """
    import av

    suffix = Path(path).suffix.lower()
    if not suffix:
        raise VideoError(
            f"{path}: no suffix, so no container format; use .mp4, .mkv, .mov or .webm"
        )
    with tempfile.TemporaryDirectory(prefix="pipelines-muxer-") as folder:
        try:
            probe = av.open(os.path.join(folder, "probe" + suffix), "w")
        except (ValueError, av.FFmpegError):
            raise VideoError(
                f"{path}: FFmpeg has no muxer for {suffix} files; use .mp4, .mkv, .mov or .webm"
            ) from None
        with probe:
            name = str(probe.format.name)
            if name in NO_TIMESTAMPS:
                raise VideoError(
                    f"{path}: {name.upper()} stores no presentation timestamps (frame timing and "
                    "B-frames would be lost); write .mkv, .mp4 or .mov"
                )
            if codec is not None:
                try:
                    probe.add_stream(codec)
                except ValueError:
                    raise VideoError(
                        f"{path}: the {name} container cannot hold {codec} video; use .mkv, or another codec"
                    ) from None
            return name


def resolve(
    settings: EncodeSettings,
    path: str | os.PathLike[str],
    width: int,
    height: int,
    bit_depth: int,
    has_alpha: bool,
) -> Encoding:
    """The encoding of frames of this size, depth and alpha into ``path``; refuses what cannot work."""
    container = muxer_for(path)
    if container in PALETTE_CONTAINERS:
        return _palette_segments(settings, container, path, width, height, has_alpha)
    codec_name = settings.codec or DEFAULT_CODECS.get(container, FALLBACK_CODEC)
    codec = _encoder(codec_name, path)
    muxer_for(path, codec.name)
    rule = RULES.get(codec.name, CodecRule(depth10=None))
    pix_fmt = settings.pix_fmt or _default_format(codec, rule, bit_depth, has_alpha, path)
    formats = [f.name for f in codec.video_formats or ()]
    if formats and pix_fmt not in formats:
        raise VideoError(
            f"{path}: {codec.name} cannot encode pixel format {pix_fmt}; it takes {', '.join(formats)}"
        )
    from pipelines.io.video.probe import has_alpha as format_has_alpha

    options = dict(rule.options)
    options.update(_quality(settings, rule, codec.name, pix_fmt, path))
    options.update(settings.options)
    out_w, out_h = even_size(pix_fmt, width, height)
    if out_w < 1 or out_h < 1:
        raise VideoError(f"{path}: frames of {width}x{height} are too small for {pix_fmt}")
    return Encoding(
        container=container,
        codec=codec.name,
        pix_fmt=pix_fmt,
        options=options,
        threads=_threads(settings),
        width=out_w,
        height=out_h,
        cropped=(out_w, out_h) != (width, height),
        keeps_alpha=has_alpha and format_has_alpha(pix_fmt),
    )


def _threads(settings: EncodeSettings) -> int:
    """Encoder threads per segment: as asked, else the cores up to 8."""
    return settings.threads or max(1, min(os.cpu_count() or 1, 8))


def _palette_segments(
    settings: EncodeSettings,
    container: str,
    path: str | os.PathLike[str],
    width: int,
    height: int,
    has_alpha: bool,
) -> Encoding:
    """A GIF output's encoding: its segments in lossless 8-bit FFV1, transcoded at the join."""
    given = [
        name
        for name, value in (("crf", settings.crf), ("preset", settings.preset))
        if value is not None
    ]
    if settings.codec not in (None, "gif"):
        given.insert(0, f"video_codec {settings.codec}")
    if settings.pix_fmt not in (None, "pal8"):
        given.append(f"pix_fmt {settings.pix_fmt}")
    if given:
        raise VideoError(
            f"{path}: GIF is written with the gif encoder and a palette of 256 colours per frame; "
            f"{', '.join(given)} does not apply (leave it unset, or write .mp4 or .webm)"
        )
    rule = RULES["ffv1"]
    return Encoding(
        container=container,
        codec="ffv1",
        pix_fmt=(rule.alpha8 if has_alpha else rule.depth8) or "bgra",
        options={**rule.options, **settings.options},
        threads=_threads(settings),
        width=width,
        height=height,
        cropped=False,
        keeps_alpha=has_alpha,
    )


def even_size(pix_fmt: str, width: int, height: int) -> tuple[int, int]:
    """The size ``pix_fmt`` can hold: width and height rounded down to its chroma subsampling."""
    import av

    fmt = av.VideoFormat(pix_fmt)
    x_step = 1024 // fmt.chroma_width(1024)  # 2 for 4:2:0 and 4:2:2, 4 for 4:1:0, 1 for RGB
    y_step = 1024 // fmt.chroma_height(1024)
    return width - width % x_step, height - height % y_step


def _encoder(name: str, path: str | os.PathLike[str]) -> Any:
    import av

    try:
        codec = av.codec.Codec(name, "w")
    except (ValueError, av.FFmpegError) as exc:  # UnknownCodecError is a ValueError
        raise VideoError(
            f"{path}: encoder {name!r} is not in this FFmpeg build ({describe_av_error(exc)}); "
            f"try one of {', '.join(available_encoders())}"
        ) from None
    if codec.type != "video":
        article = "an" if codec.type[0] in "aeiou" else "a"
        raise VideoError(f"{path}: {name} is {article} {codec.type} encoder, not a video encoder")
    return codec


def available_encoders() -> list[str]:
    """The documented video encoders this FFmpeg build has."""
    import av

    names = []
    for name in (*RULES, "libsvtav1"):
        try:
            av.codec.Codec(name, "w")
        except (ValueError, av.FFmpegError):
            continue
        names.append(name)
    return names


def _default_format(
    codec: Any, rule: CodecRule, bit_depth: int, alpha: bool, path: str | os.PathLike[str]
) -> str:
    formats = [f.name for f in codec.video_formats or ()]
    wide = bit_depth > 8
    if codec.name == "ffv1" and wide:
        plain, with_alpha = _FFV1_DEPTHS.get(bit_depth, ("gbrp16le", "gbrap16le"))
        return with_alpha if alpha else plain
    if alpha:
        choice = rule.alpha10 if wide and rule.alpha10 else rule.alpha8
        if choice is None:
            raise VideoError(
                f"{path}: {codec.name} cannot store the input's alpha channel; use ffv1 (.mkv), "
                "libvpx-vp9 (.webm) or prores_ks (.mov), or set pix_fmt (e.g. yuv420p) to drop alpha"
            )
        return choice
    if wide:
        if rule.depth10 is None or (formats and rule.depth10 not in formats):
            raise VideoError(
                f"{path}: {codec.name} has no pixel format above 8 bits in this build and the input has "
                f"{bit_depth}; use libx264, libx265 or ffv1, or set pix_fmt: yuv420p to write 8 bits"
            )
        return rule.depth10
    if formats and rule.depth8 not in formats:
        return formats[0]
    return rule.depth8


def _quality(
    settings: EncodeSettings,
    rule: CodecRule,
    codec: str,
    pix_fmt: str,
    path: str | os.PathLike[str],
) -> dict[str, str]:
    options: dict[str, str] = {}
    crf = settings.crf if settings.crf is not None else rule.crf
    if settings.crf is not None and rule.crf is None and codec in RULES:
        raise VideoError(f"{path}: {codec} has no crf setting (it is lossless or fixed-quality)")
    if crf is not None:
        if crf > rule.crf_max:
            raise VideoError(f"{path}: crf {crf} is out of range for {codec} (0 to {rule.crf_max})")
        options["crf"] = str(crf)
    preset = settings.preset or rule.preset
    if settings.preset and rule.preset is None and codec in RULES:
        raise VideoError(f"{path}: {codec} has no presets; leave preset unset")
    if preset is not None:
        options["preset"] = preset
    if codec == "prores_ks":
        options["profile"] = "4" if pix_fmt.startswith(("yuva", "yuv444")) else "3"
    return options
