"""Exporting models for other runtimes: ONNX (:mod:`.onnx`)."""
