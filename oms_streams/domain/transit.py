"""Carrier transit times learned from delivered shipments, promised at a quantile.

A lane is (carrier service, origin region, destination region). Each lane keeps a histogram of
observed transit hours (handover to delivery); when a lane has too little history the estimate
falls back to the distance band of the same service, then to the service's configured prior.
Memory is bounded (fixed buckets per lane) and an observation is O(1).

The histogram has one-hour buckets up to 30 days plus one open-ended bucket, grouped in blocks of
32 buckets whose totals are kept too: an observation touches two counters, and a quantile walks at
most 23 block totals and 32 buckets. A quantile is the upper edge of the bucket holding it (so never
below the exact empirical quantile) capped at the exact maximum observed; the exact minimum is kept
because it is the physical floor a promise may never beat.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

DISTANCE_BANDS_KM = (50.0, 150.0, 400.0, 800.0, 1500.0)
"""Upper edges of the distance bands a thin lane falls back to; beyond the last is one more band."""

BUCKET_HOURS = 1.0
"""Width of one histogram bucket."""
CLOSED_BUCKETS = 30 * 24
"""Buckets [i, i + 1) hours for i < 720; everything from 30 days on shares one open-ended bucket."""
_BUCKETS = CLOSED_BUCKETS + 1
_BLOCK_SHIFT = 5
_BLOCK = 1 << _BLOCK_SHIFT
_BLOCKS = (_BUCKETS + _BLOCK - 1) >> _BLOCK_SHIFT

SOURCE_LANE = "lane"
SOURCE_BAND = "band"
SOURCE_PRIOR = "prior"


@dataclass(frozen=True, slots=True)
class Lane:
    service_id: str
    origin_region: str
    dest_region: str
    distance_km: float


@dataclass(frozen=True, slots=True)
class TransitEstimate:
    hours: float
    """Transit at the asked quantile (conservative: the upper edge of its histogram bucket)."""
    fastest_hours: float
    """The fastest transit ever observed on the lane or band used (or the prior's minimum): the
    physical floor no promise may beat."""
    source: str
    """'lane', 'band' or 'prior'."""
    samples: int
    """Observations behind the estimate; for 'prior', the number of prior samples."""


def distance_band(distance_km: float) -> int:
    """Index of the band holding ``distance_km``: 0 for <= 50 km ... 5 for > 1,500 km (edges inclusive)."""
    return bisect_left(DISTANCE_BANDS_KM, distance_km)


def check_quantile(quantile: float) -> None:
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {quantile}")


def quantile_rank(quantile: float, count: int) -> int:
    """1-based rank of the empirical ``quantile`` among ``count`` sorted samples: ceil(q * n), >= 1.

    The small epsilon keeps float noise (0.7 * 10 = 7.000000000000001) from skipping a rank.
    """
    return min(count, max(1, math.ceil(quantile * count - 1e-9)))


def sample_quantile(samples: Sequence[float], quantile: float) -> float:
    """The exact empirical ``quantile`` of ``samples`` (the ceil(q * n)-th smallest)."""
    if not samples:
        raise ValueError("no samples")
    check_quantile(quantile)
    ordered = sorted(samples)
    return ordered[quantile_rank(quantile, len(ordered)) - 1]


class HoursHistogram:
    """Counts of durations in hours: fixed memory whatever the number of observations.

    ``quantile`` remembers its answers until the next ``add``, since a promise service asks the
    same lane far more often than the lane learns.
    """

    __slots__ = ("_blocks", "_counts", "_memo", "_memo_count", "count", "maximum", "minimum")

    def __init__(self) -> None:
        self._counts = [0] * _BUCKETS
        self._blocks = [0] * _BLOCKS
        self.count = 0
        self.minimum = math.inf
        self.maximum = -math.inf
        self._memo: dict[float, float] = {}
        self._memo_count = 0

    @property
    def slots(self) -> int:
        """Counters held: constant, whatever was observed."""
        return len(self._counts) + len(self._blocks)

    def add(self, hours: float) -> None:
        if not 0.0 <= hours < math.inf:
            raise ValueError(f"a duration must be finite and >= 0 hours, got {hours}")
        bucket = int(hours / BUCKET_HOURS)
        if bucket > CLOSED_BUCKETS:
            bucket = CLOSED_BUCKETS
        self._counts[bucket] += 1
        self._blocks[bucket >> _BLOCK_SHIFT] += 1
        self.count += 1
        if hours < self.minimum:
            self.minimum = hours
        if hours > self.maximum:
            self.maximum = hours

    def quantile(self, quantile: float) -> float:
        """Upper edge of the bucket holding the ``quantile``, capped at the maximum observed."""
        if self.count == 0:
            raise ValueError("empty histogram")
        if self._memo_count != self.count:
            self._memo.clear()
            self._memo_count = self.count
        cached = self._memo.get(quantile)
        if cached is not None:
            return cached
        check_quantile(quantile)
        rank = quantile_rank(quantile, self.count)
        seen = 0
        block = 0
        blocks = self._blocks
        while seen + blocks[block] < rank:
            seen += blocks[block]
            block += 1
        bucket = block << _BLOCK_SHIFT
        counts = self._counts
        while seen + counts[bucket] < rank:
            seen += counts[bucket]
            bucket += 1
        hours = self.maximum if bucket == CLOSED_BUCKETS else min((bucket + 1) * BUCKET_HOURS, self.maximum)
        self._memo[quantile] = hours
        return hours


class TransitModel:
    """Accumulates observations (the one mutable thing in the domain: a learning model)."""

    __slots__ = ("_bands", "_lanes", "version")

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str, str], HoursHistogram] = {}
        self._bands: dict[tuple[str, int], HoursHistogram] = {}
        self.version = 0
        """Bumped by every observation, so a memo of estimates knows when it is stale."""

    def observe(self, lane: Lane, hours: float) -> None:
        """Learn one delivered shipment's transit (handover to delivery), on its lane and band."""
        if not 0.0 <= hours < math.inf:
            raise ValueError(f"transit must be finite and >= 0 hours, got {hours}")
        key = (lane.service_id, lane.origin_region, lane.dest_region)
        histogram = self._lanes.get(key)
        if histogram is None:
            histogram = self._lanes[key] = HoursHistogram()
        histogram.add(hours)
        band_key = (lane.service_id, distance_band(lane.distance_km))
        band = self._bands.get(band_key)
        if band is None:
            band = self._bands[band_key] = HoursHistogram()
        band.add(hours)
        self.version += 1

    def estimate(
        self, lane: Lane, quantile: float, min_samples: int, prior_hours: Sequence[float]
    ) -> TransitEstimate:
        """Transit at ``quantile`` from the lane if it has ``min_samples`` observations, else from
        the service's distance band if that has, else from the prior samples (exact quantile)."""
        needed = max(1, min_samples)
        histogram = self._lanes.get((lane.service_id, lane.origin_region, lane.dest_region))
        if histogram is not None and histogram.count >= needed:
            return TransitEstimate(
                histogram.quantile(quantile), histogram.minimum, SOURCE_LANE, histogram.count
            )
        band = self._bands.get((lane.service_id, distance_band(lane.distance_km)))
        if band is not None and band.count >= needed:
            return TransitEstimate(band.quantile(quantile), band.minimum, SOURCE_BAND, band.count)
        if not prior_hours:
            raise ValueError(f"no history for lane {lane} and no prior transit")
        return TransitEstimate(
            sample_quantile(prior_hours, quantile), min(prior_hours), SOURCE_PRIOR, len(prior_hours)
        )

    def lane_histogram(self, lane: Lane) -> HoursHistogram | None:
        """What was learned on the lane itself (None before its first observation)."""
        return self._lanes.get((lane.service_id, lane.origin_region, lane.dest_region))

    def band_histogram(self, service_id: str, distance_km: float) -> HoursHistogram | None:
        return self._bands.get((service_id, distance_band(distance_km)))

    @property
    def lane_count(self) -> int:
        return len(self._lanes)
