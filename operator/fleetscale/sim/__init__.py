"""Trace-driven fleet simulator, baseline autoscaling policies, oracle and reports.

Drives the production planner unchanged. Caller: ``fleetscale simulate`` and ``make bench``.
"""
