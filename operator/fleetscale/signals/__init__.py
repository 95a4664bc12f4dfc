"""Signals adapters: read measurements (never decisions) from metric backends.

One backend per module behind the ``SignalSource`` protocol, with a fake beside it.
Callers: the controller's reconcile, ``fleetscale explain``.
"""
