"""``python -m hyber_async.cli``: the same as the ``hyber-async`` command."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
