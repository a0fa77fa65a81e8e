"""The rules of pacing (``confio_kms.core.pacing``): its constants and ``Refused``,
shared by the per-process ``Pacer`` and the host-wide ``SharedPacer``
(``confio_kms.core.pacing_shared``)."""

from __future__ import annotations

# After a throttle the rate drops to this fraction of what it was.
BETA = 0.8
# While unthrottled the rate grows by this fraction of the rate at the last cut, per second.
INCREASE = 0.25
# ... and by at least this many requests/s per second, so a low rate recovers too.
MIN_INCREASE = 1.0
# The first cut assumes at least this rate was sent (a quiet process's retries of a
# throttled group would otherwise wait seconds for turns); further throttles cut lower.
FIRST_RATE = 10.0
# Pacing never goes slower than this many requests per second.
MIN_RATE = 1.0
# Seconds without a throttle after which an empty queue ends pacing.
RELEASE = 5.0
# The first cut is below the rate of this many latest requests ...
RECENT = 16
# ... measured over this many seconds at least (a burst's rate).
BURST = 0.01


class Refused(Exception):
    """The request's turn in the queue would come after its deadline: it was not sent."""

    def __init__(self, quota: str, wait: float) -> None:
        super().__init__(quota)
        self.quota = quota
        self.wait = wait
        # A retry's turn past the call's throttle wait (not its deadline): AWS's
        # throttling is what the caller is told of.
        self.retry = False
