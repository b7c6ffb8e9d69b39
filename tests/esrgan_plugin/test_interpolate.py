"""Network interpolation on state dicts and image interpolation (paper section 3.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esrgan_plugin.errors import InterpolationError
from esrgan_plugin.interpolate import interpolate_images, interpolate_state_dicts


def test_state_dicts_blend_and_reproduce_the_endpoints() -> None:
    a = {"w": torch.tensor([0.0, 2.0]), "steps": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 6.0]), "steps": torch.tensor(5)}
    torch.testing.assert_close(interpolate_state_dicts(a, b, 0.0)["w"], a["w"])
    torch.testing.assert_close(interpolate_state_dicts(a, b, 1.0)["w"], b["w"])
    mixed = interpolate_state_dicts(a, b, 0.25)
    torch.testing.assert_close(mixed["w"], torch.tensor([1.0, 3.0]))
    assert int(mixed["steps"]) == 3  # integer buffers are copied from the first model, not blended


def test_state_dict_mismatches_are_named() -> None:
    with pytest.raises(InterpolationError, match="different parameters"):
        interpolate_state_dicts({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, 0.5)
    with pytest.raises(InterpolationError, match=r"parameter a has shape \(1,\) .* \(2,\)"):
        interpolate_state_dicts({"a": torch.zeros(1)}, {"a": torch.zeros(2)}, 0.5)
    with pytest.raises(InterpolationError, match=r"alpha must be in \[0, 1\]"):
        interpolate_state_dicts({"a": torch.zeros(1)}, {"a": torch.zeros(1)}, -0.1)


def test_image_interpolation_blends_pixels_in_the_input_dtype() -> None:
    psnr = np.full((2, 2, 3), 100, np.uint8)
    gan = np.full((2, 2, 3), 200, np.uint8)
    out = interpolate_images(psnr, gan, 0.3)
    assert out.dtype == np.uint8 and (out == 130).all()
    np.testing.assert_array_equal(interpolate_images(psnr, gan, 0.0), psnr)
    with pytest.raises(InterpolationError, match="images differ"):
        interpolate_images(psnr, gan[:1], 0.5)
    with pytest.raises(InterpolationError, match="alpha must be a number"):
        interpolate_images(psnr, gan, "half")  # type: ignore[arg-type]
