"""Benchmarks: the function against the framework's floor and the official SDK, in one run."""
