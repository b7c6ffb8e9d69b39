"""Hooks: the pluggy markers (``markers``), the hook specifications (``specs``) and the plugin manager (``manager``)."""
