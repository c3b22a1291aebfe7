"""`python -m gateway`: the `bitgate` command, for child processes started by path."""

import sys

from gateway.commands.cli import main

sys.exit(main())
