"""``python -m sci_diffusion`` is the ``sci-diffusion`` command."""

from sci_diffusion.cli import main

raise SystemExit(main())
