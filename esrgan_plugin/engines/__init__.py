"""Engines: what runs a network on tensors (the interface, one table of what runs where, and
the engines: pytorch, onednn, openvino), and the per-process upscaler cache."""
