"""python -m load.chaos."""

import sys

from load.chaos.run import main

sys.exit(main())
