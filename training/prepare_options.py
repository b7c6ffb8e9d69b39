"""How ``esrgan prepare-data`` cuts sub-images: a light module, imported by the stage's hook."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PrepareOptions(BaseModel):
    """How sub-images are cut (BasicSR's DIV2K defaults) and the LR scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crop: int = Field(480, ge=8, description="HR sub-image side in pixels")
    step: int = Field(240, ge=1, description="pixels between sub-image origins")
    thresh_size: int = Field(
        0, ge=0, description="add a last sub-image flush with the border when more is left over"
    )
    scale: int = Field(4, ge=1, le=8, description="LR = HR / scale (MATLAB bicubic)")

    @model_validator(mode="after")
    def _aligned(self) -> PrepareOptions:
        if self.crop % self.scale or self.step % self.scale:
            raise ValueError(
                f"crop {self.crop} and step {self.step} must be multiples of scale {self.scale}"
            )
        return self
