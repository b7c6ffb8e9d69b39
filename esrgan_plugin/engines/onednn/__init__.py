"""The ``onednn`` engine (CPU, RRDBNet): oneDNN convolutions with fused bias, activation and
residual additions in fp32 or bf16, and int8 dense blocks."""
