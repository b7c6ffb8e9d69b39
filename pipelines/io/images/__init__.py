"""Image files: reading and writing without losing bit depth, alpha, orientation, colour or camera data.

* :mod:`~pipelines.io.images.read`: header checks, upright arrays, :func:`read_metadata`
* :mod:`~pipelines.io.images.decode`: pixels, with precise errors and nothing on stderr
* :mod:`~pipelines.io.images.write`: encoding, metadata into the container, atomic rename
* :mod:`~pipelines.io.images.metadata`: :class:`ImageMetadata` (ICC profile, EXIF)
* :mod:`~pipelines.io.images.provenance`: provenance records (XMP) and :func:`read_provenance`
* :mod:`~pipelines.io.images.png`, :mod:`~pipelines.io.images.containers`,
  :mod:`~pipelines.io.images.tiff`: the per-format container work

The names below are re-exported explicitly (``name as name``) and there is no ``__all__``, so
``from pipelines.io.images import *`` (the deprecated ``pipelines.imageio``) re-exports every
public name, as it did when this was one module.
"""

from pipelines.io.images.decode import decode_pixels as decode_pixels
from pipelines.io.images.metadata import ImageMetadata as ImageMetadata
from pipelines.io.images.provenance import make_provenance as make_provenance
from pipelines.io.images.provenance import read_provenance as read_provenance
from pipelines.io.images.read import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from pipelines.io.images.read import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from pipelines.io.images.read import apply_exif_orientation as apply_exif_orientation
from pipelines.io.images.read import expand_inputs as expand_inputs
from pipelines.io.images.read import is_still_image as is_still_image
from pipelines.io.images.read import read_checked_header as read_checked_header
from pipelines.io.images.read import read_header as read_header
from pipelines.io.images.read import read_image as read_image
from pipelines.io.images.read import read_image_with_meta as read_image_with_meta
from pipelines.io.images.read import read_metadata as read_metadata
from pipelines.io.images.write import QUALITY_RANGE as QUALITY_RANGE
from pipelines.io.images.write import write_bytes_atomic as write_bytes_atomic
from pipelines.io.images.write import write_image as write_image
