"""Notice an input partition that has messages waiting but whose committed offset stands still.

A worker can stop consuming a partition without failing (faust 0.15's rebalance and recovery have
races of that kind: we have seen a survivor take over a partition and never read it). Lag alone does
not tell that apart from a busy worker; lag with no progress at all for a while does. The worker
reports such partitions on ``/health`` and ``oms_stalled_partitions`` so a liveness probe or an
alert can restart it (a restart recovers from the changelogs and re-reads from the last commit).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class StallWatch:
    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._still: dict[str, tuple[int, float]] = {}
        """partition -> (committed offset, since when it has not moved while messages waited)"""
        self.stalled: list[str] = []

    def observe(self, lags: dict[str, tuple[int, int]], now_s: float) -> list[str]:
        """``lags``: partition -> (committed offset, highwater) for every input partition owned now."""
        for partition in self._still.keys() - lags.keys():
            del self._still[partition]  # no longer ours
        stalled = []
        for partition, (committed, highwater) in lags.items():
            known = self._still.get(partition)
            if committed >= highwater or known is None or known[0] != committed:
                self._still[partition] = (committed, now_s)
                continue
            if now_s - known[1] >= self.after_s:
                stalled.append(partition)
        for partition in sorted(set(stalled) - set(self.stalled)):
            log.error(
                "input partition %s has had messages waiting for %.0f s without any progress; "
                "restart this worker if it does not recover",
                partition,
                self.after_s,
            )
        self.stalled = sorted(stalled)
        return self.stalled

    def standing(self, now_s: float, at_least_s: float) -> dict[str, int]:
        """Partition -> committed offset, for those with messages waiting and no progress for at
        least ``at_least_s`` (as of the last ``observe``)."""
        return {p: offset for p, (offset, since) in self._still.items() if now_s - since >= at_least_s}
