"""bench/eval_int8.py: the per-block sensitivity table on a tiny model, and its noise arithmetic."""

from __future__ import annotations

import importlib
import json
import math
import os
from pathlib import Path
from types import ModuleType

import pytest
from helpers import tiny_rrdbnet

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    # the bench defaults OMP_WAIT_POLICY at import: put this process's value back afterwards
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    return importlib.import_module("eval_int8")


def test_error_powers_add(monkeypatch: pytest.MonkeyPatch) -> None:
    eval_int8 = _module(monkeypatch)
    two = [40.0, 40.0]
    assert math.isclose(eval_int8._added(two, set()), 40 - 10 * math.log10(2))
    assert math.isclose(eval_int8._added(two, {1}), 40.0)
    assert eval_int8._added(two, {0, 1}) == math.inf


def test_the_sensitivity_table_quantises_one_block_at_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each block quantised alone costs something, and the network is left as it was."""
    eval_int8 = _module(monkeypatch)
    net = tiny_rrdbnet(nf=8, nb=2, gc=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    eval_int8.sensitivity_table(net, tmp_path)  # no Set14 images there: the cat crop only
    out = capsys.readouterr().out
    scores = json.loads(out.strip().splitlines()[-1])["per_block_db"]
    assert list(scores) == ["cat"] and len(scores["cat"]) == 6
    assert all(10 < db < math.inf for db in scores["cat"])
    assert "the last 9 in float" in out
    after = net.state_dict()
    assert all(before[k].equal(after[k]) for k in before)


def test_the_quality_table_has_crops_held_out_of_the_calibration_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The astronaut, immunohistochemistry and motorcycle crops (none of them calibrates int8)
    come from scikit-image's wheel, 192x192 RGB each; no Set14 images in an empty folder."""
    found = _module(monkeypatch).test_images(tmp_path)
    held_out = ("astronaut 192", "ihc 192", "motorcycle 192")
    assert all(found[name].shape == (192, 192, 3) for name in held_out)
    assert not any("Set14" in name for name in found)
