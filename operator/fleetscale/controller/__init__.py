"""The operator: kopf handlers, reconcile (observe -> plan -> act -> report) and status.

Handlers only parse, call reconcile, write status and post Events; reconcile takes its
dependencies and its clock as arguments. Caller: ``fleetscale run``.
"""
