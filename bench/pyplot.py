"""matplotlib's pyplot on the file-only Agg backend, or None (with a note) where it is missing."""

from __future__ import annotations

import sys
from types import ModuleType


def pyplot() -> ModuleType | None:
    """`matplotlib.pyplot` for writing pictures to files; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (make install-bench): no picture", file=sys.stderr)
        return None
    return plt
