"""`python -m monaco.cli`: the `monaco` command, as the image's entrypoint runs it."""

import sys

from monaco.cli import main

sys.exit(main())
