"""A module that calls sys.exit() on import, for the ``python`` grader tests."""

import sys

sys.exit("no config")
