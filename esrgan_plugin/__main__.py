from esrgan_plugin.cli import run

run()
