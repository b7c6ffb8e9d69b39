"""The rules that pair SR files with their HR / LR partners."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from training.evaluation.pairing import PartnerIndex, find_images, reference_index


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.fixture
def index(tmp_path: Path) -> PartnerIndex:
    _touch(
        tmp_path / "hr",
        "baboon.png",
        "img.png",
        "img_01.png",
        "set5/baby.jpg",
        "twice.png",
        "twice.jpg",
    )
    return PartnerIndex(find_images([str(tmp_path / "hr")]), "HR")


@pytest.mark.parametrize(
    ("sr", "hr"),
    [
        ("baboon.png", "baboon.png"),
        ("baboon.webp", "baboon.png"),
        ("baboon_x4.png", "baboon.png"),
        ("baboon-esrgan.png", "baboon.png"),
        ("baboon.sr.png", "baboon.png"),
        ("img_01_x4.png", "img_01.png"),
        ("img_02_x4.png", "img.png"),
        ("set5/baby_x4.png", "set5/baby.jpg"),
    ],
)
def test_pairs(index: PartnerIndex, tmp_path: Path, sr: str, hr: str) -> None:
    assert index.partner(PurePosixPath(sr), Path(sr)) == tmp_path / "hr" / hr


@pytest.mark.parametrize(
    ("sr", "message"),
    [
        ("baboonx4.png", "no HR image pairs with it"),
        ("zebra_x4.png", "no HR image pairs with it"),
        ("set14/baboon_x4.png", "in set14/"),
        ("twice_x4.png", "ambiguous HR partner"),
    ],
)
def test_unpaired_and_ambiguous(index: PartnerIndex, sr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        index.partner(PurePosixPath(sr), Path("sr") / sr)
    assert str(Path("sr") / sr) in str(info.value) and "\n" not in str(info.value)


def test_relative_paths_of_folders_files_and_globs(tmp_path: Path) -> None:
    _touch(tmp_path, "a/x.png", "a/sub/y.png")
    assert [str(f.relative) for f in find_images([str(tmp_path / "a")])] == ["sub/y.png", "x.png"]
    assert [str(f.relative) for f in find_images([str(tmp_path / "a" / "sub" / "y.png")])] == [
        "y.png"
    ]
    assert [str(f.relative) for f in find_images([str(tmp_path / "a" / "*.png")])] == ["x.png"]


def test_a_single_reference_file_pairs_with_every_sr_image(tmp_path: Path) -> None:
    """Rule 0: one file given as --hr is every SR image's partner, whatever the names."""
    _touch(tmp_path / "hr", "baboon_hr.png", "other.png")
    single = reference_index(str(tmp_path / "hr" / "baboon_hr.png"), "HR")
    for sr in ("baboon_lr_x4.png", "zebra.png", "set5/baby.png"):
        assert single.partner(PurePosixPath(sr), Path(sr)) == tmp_path / "hr" / "baboon_hr.png"
    folder = reference_index(str(tmp_path / "hr"), "HR")  # a folder still pairs by name
    with pytest.raises(ValueError, match="no HR image pairs with it"):
        folder.partner(PurePosixPath("zebra.png"), Path("zebra.png"))
    glob = reference_index(str(tmp_path / "hr" / "baboon*.png"), "HR")  # so does a glob
    with pytest.raises(ValueError, match="no HR image pairs with it"):
        glob.partner(PurePosixPath("zebra.png"), Path("zebra.png"))
