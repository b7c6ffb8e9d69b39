"""The built-in stages, registered as an ordinary plugin through ``register_stages``."""

from __future__ import annotations

from pipelines.builtin.denoise import DenoiseParams, denoise, denoise_halo
from pipelines.builtin.files import ReadParams, WriteParams, read_images, write_images
from pipelines.builtin.resize import ResizeParams, resize, resize_halo, resize_scale
from pipelines.hooks.markers import hookimpl
from pipelines.runner.registry import StageSpec


def stage_specs() -> list[StageSpec]:
    """The specifications of ``builtin.read``, ``builtin.write``, ``builtin.denoise``, ``builtin.resize``."""
    return [
        StageSpec(
            id="builtin.read",
            description="Read image files (a file, a glob or a folder), 8/16-bit, grey/RGB/RGBA, EXIF-upright; "
            "or Zarr arrays (v3 or v2) holding one image or an (N, H, W, C) dataset, lazily by chunk; or an "
            "OME-Zarr image (NGFF 0.4/0.5): one level, chosen channels, t and z, as (y, x) planes "
            "(3 channels together, other counts channel by channel) in per-channel intensity windows; "
            "or videos (any file FFmpeg opens with a video stream, found by content) as one (T, H, W, C) item "
            "each, chunked by segments of whole frames, RGB(A), 16-bit above 8 bits (docs/video.md); or a "
            "folder or glob of numbered images as one video (fps).",
            params=ReadParams,
            fn=read_images,
            consumes=None,
            produces="images",
        ),
        StageSpec(
            id="builtin.write",
            description="Write each image to a file named by a pattern, keeping bit depth and alpha, and the "
            "input's ICC profile and EXIF, with a provenance record (docs/metadata.md); "
            "atomic (temporary file + rename), and existing files are refused unless overwrite is set. "
            "A .zarr path writes a checksummed Zarr v3 array chunked like the computed blocks, resumable "
            "chunk by chunk after a crash; images read from OME-Zarr are written as an OME-Zarr (NGFF 0.5) "
            "image with a pyramid, physical scale, omero metadata and provenance, in the input's units and dtype. "
            "A video suffix (.mp4, .mkv, .mov, .webm ...) encodes each video as a resumable segment job, keeping "
            "its timestamps, sound, subtitles, chapters, metadata and colour tags (docs/video.md); an image path "
            "with {frame} writes a video's frames as images.",
            params=WriteParams,
            fn=write_images,
            consumes="images",
            produces=None,
        ),
        StageSpec(
            id="builtin.denoise",
            description="Denoise with a Gaussian, median, bilateral, non-local-means or total-variation filter "
            "(scikit-image, SciPy, OpenCV); alpha is kept as it is.",
            params=DenoiseParams,
            fn=denoise,
            halo=denoise_halo,
        ),
        StageSpec(
            id="builtin.resize",
            description="Resize with MATLAB-compatible bicubic interpolation (antialiased when shrinking).",
            params=ResizeParams,
            fn=resize,
            halo=resize_halo,
            scale=resize_scale,
        ),
    ]


@hookimpl
def register_stages() -> list[StageSpec]:
    """Register the built-in stages."""
    return stage_specs()
