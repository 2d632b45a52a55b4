"""``python -m lorarar``: the CLI; also what launchers run (``torchrun -m lorarar``, ``accelerate launch -m
lorarar``)."""

import sys

from lorarar.cli.main import main

sys.exit(main())
