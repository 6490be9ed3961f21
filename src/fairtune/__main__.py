"""``python -m fairtune``; torchrun runs it as ``torchrun --nproc-per-node N -m fairtune ...``."""

import sys

from fairtune.cli import main

sys.exit(main())
