"""Leader election on a ``coordination.k8s.io/v1`` Lease, in client-go's model.

Role: decide which operator replica acts. ``lease`` holds the pure rules (who may write which
record when), ``store`` reads and writes the Lease (a port with a Kubernetes implementation and
a fake), ``elector`` runs the loop: acquire when the lease is free or expired, renew every
retry period, and stop acting the moment a renewal has not succeeded within the renew
deadline. Callers: ``controller.handlers`` (one elector per operator process), the
``kubeapi.FencedApiClient`` fence, tests.
"""

from fleetscale.election.elector import LeaderElector
from fleetscale.election.lease import LeaseRecord, Timing

__all__ = ["LeaderElector", "LeaseRecord", "Timing"]
