"""The ways to run a plan: in this process, one worker process per device, or a Ray actor pool.

Each takes the same RunPlan and returns a RunResult with the same records, so every option means
the same under each; what an engine cannot honour is refused by the plan with one line.
"""
