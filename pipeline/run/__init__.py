"""A run: its plan, the runner, the engines that execute it, and what it reports."""
