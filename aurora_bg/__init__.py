"""aurora-bluegreen: shared types and the `aurora-bg` command line."""

__version__ = "0.1.0"
