"""Measuring modomo: bench, sweep, compare, FLOPs."""
