"""The napari plugin (npe2 manifest ``napari.yaml``): a dock widget that upscales image layers.

Nothing here is imported by ``esrgan_plugin`` or the ``esrgan`` command: napari and Qt load
only when napari opens the widget (the ``napari`` extra: napari, a Qt binding, npe2).
"""
