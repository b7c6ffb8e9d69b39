"""Input and output: image files, the item types, Zarr sources and sinks, and atomic writes."""

from pipelines.io.images import read_image, write_image

__all__ = ["read_image", "write_image"]
