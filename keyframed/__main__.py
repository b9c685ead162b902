"""Allow ``python -m keyframed``."""

from keyframed.daemon.cli import main

raise SystemExit(main())
