"""Benchmarks, run by `make bench`. Each prints our time, a baseline timed in the same run, and
their ratio, so the figures mean the same on any machine."""
