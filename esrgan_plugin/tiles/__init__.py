"""Seamless tiles: the halo a model needs (measured), default tile sizes, and tiled runs."""
