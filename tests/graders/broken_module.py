"""A module that fails on import, for the ``python`` grader tests."""

raise RuntimeError("database URL not set")
