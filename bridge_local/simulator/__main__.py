"""``python -m bridge_local.simulator``: see ``bridge_local.simulator.cli``."""

from bridge_local.simulator.cli import main

raise SystemExit(main())
