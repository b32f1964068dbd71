"""The demo application, its seeded trace generator and the bundled traces."""
