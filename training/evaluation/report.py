"""A sweep's report folder: results.csv, results.json, perception-distortion.png, index.html.

``index.html`` is one self-contained file (images embedded as data URIs, a few lines of inline
script, no server, no network): the plot, the table of means, side-by-side crops (bicubic |
each alpha | HR) with a crop selector and alpha toggles, and the per-image table.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from training.evaluation.evaluate import _clean
from training.evaluation.plot import Axes, choose_axes, draw, points, save_png
from training.evaluation.sweep import SweepResult
from training.evaluation.tables import csv_text, format_value, header, write_json, write_text

FILES = ("results.csv", "results.json", "perception-distortion.png", "index.html")


def _rows(result: SweepResult) -> list[tuple[list[str], dict[str, float]]]:
    """(method, alpha, image) rows per image, then a mean row per method."""
    rows: list[tuple[list[str], dict[str, float]]] = []
    for method, evaluation in result.methods.items():
        alpha = method.split()[1] if method.startswith("alpha ") else ""
        rows.extend(([method, alpha, name], values) for name, values in evaluation.rows)
        rows.append(([method, alpha, "mean"], evaluation.mean()))
    return rows


def results_json(result: SweepResult, axes: Axes) -> dict[str, object]:
    """Everything the report shows, as JSON (inf as "inf", missing as null)."""
    return {
        "psnr_model": result.psnr_model,
        "gan_model": result.gan_model,
        "alphas": result.alphas,
        "scale": result.scale,
        "metrics": list(result.metrics),
        "notes": result.notes,
        "methods": {
            method: {
                "images": [{"image": n, **_clean(v)} for n, v in e.rows],
                "mean": _clean(e.mean()),
            }
            for method, e in result.methods.items()
        },
        "plot": {
            "x": axes.x_label,
            "y": axes.y_label,
            "points": [{"method": p.method, "x": p.x, "y": p.y} for p in points(result, axes)],
        },
    }


def write_report(result: SweepResult, folder: str | Path) -> Path:
    """Write the four report files into ``folder``; returns index.html's path."""
    out = Path(folder)
    axes = choose_axes(result.metrics, result.has_hr)
    rows = _rows(result)
    keys = ["method", "alpha", "image"]
    write_text(out / "results.csv", csv_text(keys, rows, result.metrics))
    write_json(out / "results.json", results_json(result, axes))
    figure = draw(result, axes)
    save_png(figure, out / "perception-distortion.png")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_text(out / "index.html", page(result, axes, buffer.getvalue()))


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_uri(pixels: np.ndarray) -> str:
    import cv2

    bgr = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", bgr)
    assert ok
    return _png_uri(encoded.tobytes())


def _table(result: SweepResult, per_image: bool, table_id: str) -> str:
    metrics = result.metrics
    keys = ["method", "image"] if per_image else ["method"]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "".join(
        f"<th>{html.escape(header(m))}</th>" for m in metrics
    )
    body = []
    for method, evaluation in result.methods.items():
        entries = evaluation.rows if per_image else [("mean", evaluation.mean())]
        for name, values in entries:
            cells = [method, name] if per_image else [method]
            tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            tds += "".join(
                f'<td class="num">{format_value(m, values.get(m))}</td>' for m in metrics
            )
            body.append(f"<tr>{tds}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _crops(result: SweepResult) -> tuple[str, str, str]:
    """(crop <option>s, alpha toggles, crop sets) for the side-by-side view."""
    options, sets = [], []
    index = 0
    for image in result.crops:
        for k, window in enumerate(image.windows):
            label = f"{image.name}, crop {k + 1} (top {window.top}, left {window.left}, {window.size} px)"
            options.append(f'<option value="{index}">{html.escape(label)}</option>')
            figures = []
            for method, crops in image.pixels.items():
                values = dict(result.methods[method].rows).get(image.name, {})
                caption = " · ".join(
                    f"{m} {format_value(m, values[m])}" for m in result.metrics if m in values
                )
                figures.append(
                    f'<figure data-method="{html.escape(method)}"><img alt="{html.escape(method)}" '
                    f'src="{_image_uri(crops[k])}"><figcaption><b>{html.escape(method)}</b><br>'
                    f"{html.escape(caption)}</figcaption></figure>"
                )
            hidden = "" if index == 0 else " hidden"
            sets.append(
                f'<div class="crop-set" data-crop="{index}"{hidden}>{"".join(figures)}</div>'
            )
            index += 1
    toggles = "".join(
        f'<label><input type="checkbox" class="alpha-toggle" value="{html.escape(m)}" checked> '
        f"{html.escape(m)}</label>"
        for m in result.methods
        if m.startswith("alpha ")
    )
    return "".join(options), toggles, "".join(sets)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .5em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.crop-set{display:flex;flex-wrap:wrap;gap:.5em}.crop-set[hidden]{display:none}
figure{margin:0;width:200px;text-align:center;font-size:.8em}
figure img{width:192px;height:192px;image-rendering:pixelated;border:1px solid #999}
.toggles label{margin-right:.8em;white-space:nowrap}
"""

_SCRIPT = """
window.addEventListener('error', function (e) {
  document.body.dataset.errors = (document.body.dataset.errors || '') + e.message + ';';
});
function showCrop(i) {
  document.querySelectorAll('.crop-set').forEach(function (s) { s.hidden = s.dataset.crop !== String(i); });
}
function applyToggles() {
  var on = {};
  document.querySelectorAll('.alpha-toggle').forEach(function (t) { on[t.value] = t.checked; });
  document.querySelectorAll('figure[data-method]').forEach(function (f) {
    var m = f.dataset.method;
    f.style.display = (m in on && !on[m]) ? 'none' : '';
  });
}
document.getElementById('crop-select').addEventListener('change', function (e) { showCrop(e.target.value); });
document.querySelectorAll('.alpha-toggle').forEach(function (t) { t.addEventListener('change', applyToggles); });
var select = document.getElementById('crop-select');
var wanted = location.hash.match(/crop=(\\d+)/);
if (wanted && select.options[Number(wanted[1])]) { select.value = wanted[1]; }
showCrop(select.value);
applyToggles();
window.addEventListener('load', function () {
  var plot = document.getElementById('plot');
  document.body.dataset.plot = plot.naturalWidth + 'x' + plot.naturalHeight;
});
document.body.dataset.ready = 'yes';
"""


def page(result: SweepResult, axes: Axes, plot_png: bytes) -> str:
    """The self-contained HTML report."""
    options, toggles, sets = _crops(result)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    alphas = ", ".join(f"{a:g}" for a in result.alphas)
    title = "Perception-distortion sweep"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_STYLE}</style></head>
<body>
<h1>{title}</h1>
<p>Network interpolation (1 - alpha) * <code>{html.escape(result.psnr_model)}</code> + alpha *
<code>{html.escape(result.gan_model)}</code>, x{result.scale}, alphas {alphas};
{len(result.crops)} images. Lower-left is better on the plot.</p>
<ul>{notes}</ul>
<h2>Perception-distortion plane</h2>
<img id="plot" alt="perception-distortion plot: {html.escape(axes.y_label)} against {html.escape(axes.x_label)}" src="{_png_uri(plot_png)}">
<h2>Mean over images</h2>
{_table(result, False, "means")}
<h2>Side by side</h2>
<p><label>Crop <select id="crop-select">{options}</select></label></p>
<p class="toggles">Alphas shown: {toggles}</p>
<div id="crops">{sets}</div>
<h2>Per image</h2>
{_table(result, True, "per-image")}
<script>{_SCRIPT}</script>
</body></html>
"""
