"""The provenance record ``builtin.write`` puts into every image and video it writes."""

from __future__ import annotations

from typing import Any

from pipelines.io.images.provenance import make_provenance
from pipelines.io.items import ImageItem
from pipelines.runner.tasks import current_pipeline, current_step


def provenance_of(item: ImageItem) -> dict[str, Any]:
    """How ``item`` was made: its source, every step applied, and the pipeline and writing step."""
    pipeline, step = current_pipeline(), current_step()
    where = {
        "name": pipeline[0] if pipeline else None,
        "file": pipeline[1] if pipeline else None,
        "write_step": step[0] if step else None,
    }
    return make_provenance(source=item.meta.source, steps=item.meta.history, pipeline=where)
