"""Readers of model files other than PyTorch's own: ncnn ``.param`` + ``.bin`` graphs."""

from esrgan_plugin.formats.ncnn import NcnnGraph, NcnnLayer, read_ncnn
from esrgan_plugin.models.files import is_ncnn_path

__all__ = ["NcnnGraph", "NcnnLayer", "is_ncnn_path", "read_ncnn"]
