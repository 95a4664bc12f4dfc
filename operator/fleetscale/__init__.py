"""fleetscale: a Kubernetes operator that sizes LLM inference fleets to their demand."""

__version__ = "0.1.0"
