"""Loopback fakes of the services tracegrade talks to, run as real HTTP servers in the tests."""
