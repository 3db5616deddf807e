"""``python -m predeploy_gate``: the same as the ``predeploy-gate`` command."""

import sys

from predeploy_gate.cli import main

sys.exit(main())
