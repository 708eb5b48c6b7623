"""`python -m nerf_eval.cli`: the `nerf-eval` command."""

import sys

from nerf_eval.cli import main

sys.exit(main())
