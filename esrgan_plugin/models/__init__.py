"""Models: the loaded-model record, loading any supported file, and named models (catalogue)."""
