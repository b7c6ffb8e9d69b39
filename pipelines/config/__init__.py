"""Configuration: the YAML loader with locations (``loader``), the pipeline schema (``schema``) and validation."""
