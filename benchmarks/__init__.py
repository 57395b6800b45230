"""Benchmarks of the upgrade against the lab (see benchmarks/RESULTS.md)."""
