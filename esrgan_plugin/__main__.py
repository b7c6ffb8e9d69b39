from esrgan_plugin.cli import main

raise SystemExit(main())
