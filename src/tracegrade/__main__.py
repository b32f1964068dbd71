"""``python -m tracegrade``."""

from tracegrade.cli import main

# Guarded: worker processes started by spawn or a fork server import the parent's main module.
if __name__ == "__main__":
    main()
