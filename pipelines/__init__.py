"""A generic, pluggy-based image pipeline runner (host side; knows nothing of any model)."""
