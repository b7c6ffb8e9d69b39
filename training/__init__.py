"""Training of ESRGAN models (the paper's two-stage recipe). Not built yet: see the training issue."""
