"""The screenshot in docs/napari.md: the widget docked in napari, an image and its upscaled layer.

Run under a display (a virtual one is enough):

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/render_napari_screenshot.py

A 96 x 96 crop of scikit-image's immunohistochemistry image is upscaled x4 by the widget (the
catalogue's default model, fp32) in napari's grid mode, input | output, and the whole window is
saved as a 256-colour PNG at most 1000 pixels wide (docs/images/napari-widget.png).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "images" / "napari-widget.png"
MAX_WIDTH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument("--model", default=None, help="model name or file (default: the default)")
    args = parser.parse_args()

    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication
    from skimage import data

    from esrgan_plugin.napari.widget import UpscaleWidget

    viewer = napari.Viewer(title="esrgan-pipelines: napari widget")
    viewer.window.resize(1500, 820)
    crop = np.ascontiguousarray(data.immunohistochemistry()[200:296, 240:336])
    viewer.add_image(crop, name="IHC crop", rgb=True)
    widget = UpscaleWidget(viewer)
    viewer.window.add_dock_widget(widget, name="ESRGAN upscale", area="right")
    if args.model:
        widget.model_box.setCurrentIndex(max(0, widget.model_box.findData(args.model)))
    widget.precision_box.setCurrentText("fp32")
    widget.run_button.click()
    app = QApplication.instance()
    assert app is not None
    started = time.monotonic()
    while widget.worker is not None or not widget.run_button.isEnabled():
        app.processEvents()
        time.sleep(0.05)
        if time.monotonic() - started > 1800:
            raise SystemExit("the widget did not finish in 30 minutes")
    if not widget.status.text().startswith("done"):
        raise SystemExit(f"the widget failed: {widget.status.text()}")
    viewer.grid.enabled = True
    viewer.grid.stride = 1  # input left, output right
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(shot[..., :3])
    if image.width > MAX_WIDTH:
        image = image.resize(
            (MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.LANCZOS
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(256).save(args.output, optimize=True)
    print(f"wrote {args.output} ({image.width}x{image.height}, {args.output.stat().st_size} bytes)")
    viewer.close()


if __name__ == "__main__":
    main()
