"""`python -m rnnscope.sweep OUT POINT_JSON`: the local pool's worker process."""

import sys

from .worker import worker_main

sys.exit(worker_main(sys.argv[1:]))
