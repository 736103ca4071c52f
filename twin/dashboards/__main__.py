"""``python -m twin.dashboards [--check]``: write (or check) ``dashboards/*.json``."""

from twin.dashboards.boards import main

raise SystemExit(main())
