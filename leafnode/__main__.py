"""``python -m leafnode``: the ``leafnode`` command line."""

from __future__ import annotations

from leafnode.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
