"""`python -m whatif` runs the CLI."""

from whatif.cli import main

raise SystemExit(main())
