"""``python -m hyber_async.emulator``: the same as ``hyber-async emulator``."""

from __future__ import annotations

import sys

from ._command import main

if __name__ == "__main__":
    sys.exit(main())
