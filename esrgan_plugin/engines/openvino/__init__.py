"""The ``openvino`` engine (CPU): the network exported to ONNX and compiled by OpenVINO."""
