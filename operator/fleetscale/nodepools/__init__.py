"""Node-pool providers: read and set the size of a group of accelerator nodes.

One provider per module behind one narrow protocol, each with its contract and a fake.
Caller: the controller's AcceleratorPool reconcile.
"""
