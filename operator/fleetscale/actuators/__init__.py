"""Actuator adapters: read and set the size of scaled workloads, publish the shed flag, post
Events. Each behind a protocol with a fake beside it. Caller: the controller's reconcile.
"""
