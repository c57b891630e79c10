"""`python -m stylecore` is the `stylize` command."""

from stylecore.cli import main

raise SystemExit(main())
