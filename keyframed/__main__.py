"""Allow ``python -m keyframed``."""

from keyframed.cli.main import main

raise SystemExit(main())
