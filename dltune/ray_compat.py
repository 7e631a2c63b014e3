"""What dltune needs from Ray that Ray has no public switch for, in one place."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

# Credentials Ray Tune copies from the driver's environment into every trial actor's runtime
# env, which Ray's runtime-env agent then writes, in clear, into the session's logs.
PROPAGATED_SECRETS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"})


@contextlib.contextmanager
def trials_without_driver_secrets() -> Iterator[None]:
    """Run Tune trials without the driver's credentials in their runtime env.

    Workers get credentials the way a cluster's nodes should: from their own
    environment (a Kubernetes Secret, the node's profile). A local Ray started
    by this process hands its environment down to its workers anyway. Ray
    reads the names from this set each time it registers a trainable, so it is
    narrowed for the duration and put back after.
    """
    from ray.tune.execution import class_cache

    names = class_cache.ENV_VARS_TO_PROPAGATE
    dropped = names & PROPAGATED_SECRETS
    names -= dropped
    try:
        yield
    finally:
        names |= dropped
