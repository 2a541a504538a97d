"""modomo's image pipeline: sources, stages, runner, timing and cost."""

__version__ = "0.1.0"
