"""modomo command-line interface."""
