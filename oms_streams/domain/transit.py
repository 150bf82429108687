"""Carrier transit times learned from delivered shipments, promised at a calibrated quantile.

A lane is (carrier service, origin region, destination region). What is learned is kept at three
levels: the lane, the service's distance band (a distance model learned from all its lanes) and the
service as a whole. A lane is promised from its own history pooled with its band's, the band's
pooled with the service's, the service's with the carrier's stated prior: each level counts as
``pooling`` pseudo-observations of the level above, so a thin lane leans on its parents and a lane
with no history at all is promised from its band (hierarchical shrinkage, not a hard cut-off).

History is weighted by recency: an observation's weight halves every ``half_life_days`` of
delivery time (None: all history weighs the same). The weights live in fixed histograms (one-hour
buckets up to a week, six-hour buckets up to 180 days, one open bucket), so memory per lane is
constant and an observation is O(1).

The promise itself is the whole lead time (order -> delivery, local days) per lane, learned by the
same model (``observe_delivery``, ``observe_in_transit``, ``lead``; see ``domain.lead_time``): it
counts parcels still in transit as censored observations. The carrier-leg histograms above give the
physical floor (the fastest transit ever seen) and the promise before any lead time is learned.

Optionally the quantile level of the transit histograms is calibrated online (adaptive conformal
inference, Gibbs & Candès 2021): before a delivered shipment is learned, the model checks whether
its own promise for that lane at the current level would have held, and moves the level by
``calibration_rate`` towards the asked confidence (up after a miss, down after a hit). The level
used is in ``TransitEstimate.level``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from oms_streams.domain.calendar import local_date
from oms_streams.domain.lead_time import LeadEstimate, LeadTimes, lead_days

DISTANCE_BANDS_KM = (50.0, 150.0, 400.0, 800.0, 1500.0, 3000.0)
"""Upper edges of the distance bands; beyond the last is one more band."""

FINE_HOURS = 168
"""One-hour buckets below a week ..."""
COARSE_HOURS = 6.0
MAX_HOURS = 180 * 24
"""... six-hour buckets up to 180 days; everything longer shares one open-ended bucket."""
_FINE = FINE_HOURS
_BUCKETS = _FINE + int((MAX_HOURS - FINE_HOURS) / COARSE_HOURS) + 1
_OPEN = _BUCKETS - 1
_BLOCK_SHIFT = 5
_BLOCK = 1 << _BLOCK_SHIFT
_BLOCKS = (_BUCKETS + _BLOCK - 1) >> _BLOCK_SHIFT

SOURCE_LANE = "lane"
SOURCE_BAND = "band"
SOURCE_SERVICE = "service"
SOURCE_PRIOR = "prior"
"""'prior': no level has ``min_samples`` of history; the promise has no evidence behind it."""

_MAX_EXPONENT = 60.0
"""Weights grow as 2 ** (age in half-lives); rescaled before they could overflow."""
_MAX_CALIBRATED = 64
_MAX_MEMO = 20_000


@dataclass(frozen=True, slots=True)
class Lane:
    service_id: str
    origin_region: str
    dest_region: str
    distance_km: float


@dataclass(frozen=True, slots=True)
class TransitEstimate:
    hours: float
    """Transit at the calibrated level (conservative: the upper edge of its histogram bucket),
    never below ``fastest_hours``."""
    fastest_hours: float
    """The fastest transit observed on the most specific level with history (or the prior's
    minimum): the physical floor no promise may beat."""
    source: str
    """The most specific level with ``min_samples`` of (recency-weighted) history: 'lane', 'band',
    'service'; 'prior' when none has."""
    samples: int
    """Observations behind ``source`` (recency-weighted, rounded); for 'prior', the prior samples."""
    level: float = 0.0
    """The quantile level used: the asked one, moved by online calibration when that is on."""

    @property
    def has_evidence(self) -> bool:
        return self.source != SOURCE_PRIOR


def distance_band(distance_km: float) -> int:
    """Index of the band holding ``distance_km``: 0 for <= 50 km ... 6 for > 3,000 km (edges inclusive)."""
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


def bucket_of(hours: float) -> int:
    if hours < _FINE:
        return int(hours)
    if hours < MAX_HOURS:
        return _FINE + int((hours - _FINE) / COARSE_HOURS)
    return _OPEN


def bucket_upper_edge(bucket: int) -> float:
    """Exclusive upper edge of a closed bucket (infinite for the open one)."""
    if bucket < _FINE:
        return float(bucket + 1)
    if bucket < _OPEN:
        return _FINE + (bucket - _FINE + 1) * COARSE_HOURS
    return math.inf


class HoursHistogram:
    """Weighted counts of durations in hours: fixed memory whatever the number of observations."""

    __slots__ = ("_blocks", "_counts", "count", "maximum", "minimum", "weight")

    def __init__(self) -> None:
        self._counts = [0.0] * _BUCKETS
        self._blocks = [0.0] * _BLOCKS
        self.count = 0
        """Observations added (unweighted)."""
        self.weight = 0.0
        """Their total weight (in the owning model's current scale)."""
        self.minimum = math.inf
        self.maximum = -math.inf

    @property
    def slots(self) -> int:
        """Counters held: constant, whatever was observed."""
        return len(self._counts) + len(self._blocks)

    def add(self, hours: float, weight: float = 1.0) -> None:
        if not 0.0 <= hours < math.inf:
            raise ValueError(f"a duration must be finite and >= 0 hours, got {hours}")
        bucket = bucket_of(hours)
        self._counts[bucket] += weight
        self._blocks[bucket >> _BLOCK_SHIFT] += weight
        self.count += 1
        self.weight += weight
        self.minimum = min(self.minimum, hours)
        self.maximum = max(self.maximum, hours)

    def rescale(self, factor: float) -> None:
        self._counts = [c * factor for c in self._counts]
        self._blocks = [b * factor for b in self._blocks]
        self.weight *= factor

    def quantile(self, quantile: float) -> float:
        """Upper edge of the bucket holding the ``quantile``, capped at the maximum observed."""
        if self.count == 0:
            raise ValueError("empty histogram")
        check_quantile(quantile)
        return mixture_quantile(((1.0, self),), quantile)


def mixture_quantile(parts: Sequence[tuple[float, HoursHistogram]], quantile: float) -> float:
    """The ``quantile`` of a mixture: each (share, histogram) contributes share of its distribution.

    The answer is the upper edge of the bucket where the mixture's cumulative share first reaches
    ``quantile`` (rank semantics: ceil(q * n) for one unweighted histogram), capped at the largest
    maximum of the parts holding something in that bucket."""
    scaled = [(share / h.weight, h) for share, h in parts if share > 0 and h.weight > 0]
    total = sum(f * h.weight for f, h in scaled)
    target = quantile * total - 1e-9 * total
    seen, block = 0.0, 0
    while block < _BLOCKS - 1:
        mass = sum(f * h._blocks[block] for f, h in scaled)
        if mass > 0 and seen + mass >= target:
            break
        seen += mass
        block += 1
    bucket = block << _BLOCK_SHIFT
    while bucket < _OPEN:
        mass = sum(f * h._counts[bucket] for f, h in scaled)
        if mass > 0 and seen + mass >= target:
            break
        seen += mass
        bucket += 1
    edge = bucket_upper_edge(bucket)
    return max(min(edge, h.maximum) for _, h in scaled if h._counts[bucket] > 0)


def _prior_histogram(prior_hours: Sequence[float]) -> HoursHistogram:
    histogram = HoursHistogram()
    for hours in prior_hours:
        histogram.add(hours)
    return histogram


_LEAD_NAMES = (SOURCE_LANE, SOURCE_BAND, SOURCE_SERVICE)


@dataclass(frozen=True, slots=True)
class TransitSettings:
    half_life_days: float | None = 60.0
    """An observation's weight halves every this many days of delivery time; None: never."""
    pooling: float = 10.0
    """How many observations a parent level (band, service, prior) counts for in a child's estimate."""
    calibration_rate: float = 0.0
    """Adaptive conformal step (gamma); 0 keeps the asked level."""
    calibration_warmup: int = 30
    """Observations of a service before its level starts to move."""


class TransitModel:
    """Accumulates observations (the one mutable thing in the domain: a learning model)."""

    __slots__ = (
        "_alpha",
        "_bands",
        "_lanes",
        "_leads",
        "_memo",
        "_now_ms",
        "_priors",
        "_ref_ms",
        "_services",
        "settings",
        "version",
    )

    def __init__(self, settings: TransitSettings = TransitSettings()) -> None:
        self.settings = settings
        self._lanes: dict[tuple[str, str, str], HoursHistogram] = {}
        self._bands: dict[tuple[str, int], HoursHistogram] = {}
        self._services: dict[str, HoursHistogram] = {}
        self._ref_ms: int | None = None
        self._now_ms: int | None = None
        self._alpha: dict[tuple[str, float], float] = {}
        """(service, asked quantile) -> current miss rate aimed at (1 - level)."""
        self._priors: dict[str, tuple[float, ...]] = {}
        """The prior each service was last estimated with: the calibration check uses it too."""
        self._memo: dict[tuple[object, ...], TransitEstimate] = {}
        self._leads = LeadTimes(settings.half_life_days, settings.pooling)
        self.version = 0
        """Bumped by every observation, so a memo of estimates knows when it is stale."""

    def observe(self, lane: Lane, hours: float, at_ms: int | None = None) -> None:
        """Learn one delivered shipment's transit, delivered at ``at_ms`` (None: now, no decay)."""
        if not 0.0 <= hours < math.inf:
            raise ValueError(f"transit must be finite and >= 0 hours, got {hours}")
        weight = self._weight(at_ms)
        self._calibrate(lane, hours)
        for histogram in self._levels(lane, create=True):
            assert histogram is not None
            histogram.add(hours, weight)
        self.version += 1
        self._memo.clear()

    def observe_delivery(
        self,
        lane: Lane,
        placed_ms: int,
        handed_ms: int,
        delivered_ms: int,
        timezone: str,
        in_transit: bool = False,
    ) -> None:
        """Learn one delivered parcel: its carrier transit (handed -> delivered, for the floor) and
        its whole lead time in local days of ``timezone`` (the origin's). ``in_transit``: it was
        announced with ``observe_in_transit`` before, and stops counting as in transit now."""
        if not placed_ms <= handed_ms <= delivered_ms:
            raise ValueError("a delivery must be placed <= handed to carrier <= delivered")
        self.observe(lane, (delivered_ms - handed_ms) / 3_600_000, delivered_ms)
        days = lead_days(placed_ms, delivered_ms, timezone)
        self._leads.add_delivered(self._lead_keys(lane), local_date(timezone, placed_ms), days, in_transit)

    def observe_in_transit(self, lane: Lane, placed_ms: int, timezone: str) -> None:
        """A parcel ordered at ``placed_ms`` is with the carrier and not delivered: until it is, its
        lead time is known to be at least its age (a censored observation)."""
        self._leads.add_in_transit(self._lead_keys(lane), local_date(timezone, placed_ms))
        self.version += 1
        self._memo.clear()

    def lead(
        self,
        lane: Lane,
        placed_ms: int,
        timezone: str,
        quantile: float,
        min_samples: int,
        prior_days: Sequence[int],
    ) -> tuple[date, LeadEstimate] | None:
        """The local day (in ``timezone``) by whose end an order placed at ``placed_ms`` on ``lane``
        is delivered with probability ``quantile``, and the estimate behind it; None when no lead
        time was learned on any level of the lane (the caller promises from the carrier leg).

        The one promise rule: ``POST /promise`` and ``oms promise backtest`` both call this."""
        check_quantile(quantile)
        ordered = local_date(timezone, placed_ms)
        found = self._leads.estimate(
            self._lead_keys(lane), _LEAD_NAMES, ordered, quantile, min_samples, prior_days
        )
        if found is None:
            return None
        return date.fromordinal(ordered.toordinal() + found.days), found

    @staticmethod
    def _lead_keys(lane: Lane) -> tuple[tuple[object, ...], ...]:
        return (
            ("lane", lane.service_id, lane.origin_region, lane.dest_region),
            ("band", lane.service_id, distance_band(lane.distance_km)),
            ("service", lane.service_id),
        )

    @property
    def lead_times(self) -> LeadTimes:
        return self._leads

    def estimate(
        self, lane: Lane, quantile: float, min_samples: int, prior_hours: Sequence[float]
    ) -> TransitEstimate:
        """Transit at ``quantile`` (calibrated), pooled from lane, band, service and prior."""
        check_quantile(quantile)
        prior = tuple(prior_hours)
        key = (lane.service_id, lane.origin_region, lane.dest_region, distance_band(lane.distance_km))
        memo_key = (*key, quantile, min_samples, prior)
        cached = self._memo.get(memo_key)
        if cached is not None:
            return cached
        if prior:
            self._priors[lane.service_id] = prior
        level = self.level(lane.service_id, quantile)
        found = self._estimate(lane, level, max(1, min_samples), prior)
        if len(self._memo) >= _MAX_MEMO:
            self._memo.clear()
        self._memo[memo_key] = found
        return found

    def level(self, service_id: str, quantile: float) -> float:
        """The calibrated level for an asked ``quantile`` (the quantile itself until calibrated)."""
        if self.settings.calibration_rate <= 0:
            return quantile
        alpha = self._alpha.get((service_id, quantile))
        if alpha is None:
            if len(self._alpha) >= _MAX_CALIBRATED:
                self._alpha.pop(next(iter(self._alpha)))
            alpha = self._alpha[(service_id, quantile)] = 1.0 - quantile
        return min(1.0, max(0.0, 1.0 - alpha))

    def _estimate(self, lane: Lane, level: float, needed: int, prior: tuple[float, ...]) -> TransitEstimate:
        levels = self._levels(lane, create=False)
        names = (SOURCE_LANE, SOURCE_BAND, SOURCE_SERVICE)
        scale = self._decay_now()
        source, samples, fastest = SOURCE_PRIOR, len(prior), min(prior, default=math.inf)
        for name, histogram in zip(names, levels, strict=True):
            if histogram is not None and histogram.weight * scale >= needed - 1e-9:
                source, samples = name, round(histogram.weight * scale)
                break
        # The carrier's prior stands in only until some level has min_samples of its own.
        parts = self._shares(levels, prior if source == SOURCE_PRIOR else ())
        if not parts:
            raise ValueError(f"no history for lane {lane} and no prior transit")
        for histogram in levels:
            if histogram is not None and histogram.count:
                fastest = histogram.minimum  # the most specific level that saw anything
                break
        if len(parts) == 1 and source == SOURCE_PRIOR and not any(levels):
            hours = sample_quantile(prior, level)  # nothing learned: the carrier's own samples, exact
        else:
            hours = max(mixture_quantile(parts, level), fastest)
        return TransitEstimate(hours, fastest, source, samples, level)

    def _shares(
        self, levels: Sequence[HoursHistogram | None], prior: tuple[float, ...]
    ) -> list[tuple[float, HoursHistogram]]:
        """Each level's share of the pooled distribution, most specific first: a level with n
        (weighted) observations keeps n / (n + k) and leaves k / (n + k) to its parents."""
        k = self.settings.pooling
        scale = self._decay_now()
        parts: list[tuple[float, HoursHistogram]] = []
        left = 1.0
        for histogram in levels:
            if histogram is None or histogram.weight <= 0:
                continue
            n = histogram.weight * scale
            own = n / (n + k) if k > 0 else 1.0
            parts.append((left * own, histogram))
            left *= 1.0 - own
        if prior and (left > 0 or not parts):
            parts.append((left if parts else 1.0, _prior_histogram(prior)))
        elif parts and left > 0:
            # No prior: the most general level with history takes the rest.
            share, histogram = parts[-1]
            parts[-1] = (share + left, histogram)
        return parts

    def _levels(self, lane: Lane, create: bool) -> tuple[HoursHistogram | None, ...]:
        """The lane's, its band's and its service's histograms, most specific first."""
        lane_key = (lane.service_id, lane.origin_region, lane.dest_region)
        band_key = (lane.service_id, distance_band(lane.distance_km))
        found = (
            self._lanes.get(lane_key),
            self._bands.get(band_key),
            self._services.get(lane.service_id),
        )
        if not create or all(found):
            return found
        return (
            found[0] or self._lanes.setdefault(lane_key, HoursHistogram()),
            found[1] or self._bands.setdefault(band_key, HoursHistogram()),
            found[2] or self._services.setdefault(lane.service_id, HoursHistogram()),
        )

    def _calibrate(self, lane: Lane, hours: float) -> None:
        """Adaptive conformal step for every confidence asked of the lane's service."""
        rate = self.settings.calibration_rate
        service = self._services.get(lane.service_id)
        if rate <= 0 or service is None or service.count < self.settings.calibration_warmup:
            return
        prior = self._priors.get(lane.service_id, ())
        for (service_id, quantile), alpha in list(self._alpha.items()):
            if service_id != lane.service_id:
                continue
            level = min(1.0, max(0.0, 1.0 - alpha))
            promised = self._estimate(lane, level, 1, prior).hours
            missed = 1.0 if hours > promised else 0.0
            # Bounded so a pathological stream cannot wind the level up for ever.
            self._alpha[(service_id, quantile)] = min(
                2.0, max(-1.0, alpha + rate * (1.0 - quantile - missed))
            )

    def _weight(self, at_ms: int | None) -> float:
        half_life = self.settings.half_life_days
        if half_life is None or at_ms is None:
            return 1.0 if self._ref_ms is None else 1.0 / self._decay_now()
        if self._ref_ms is None:
            self._ref_ms = at_ms
        self._now_ms = at_ms if self._now_ms is None else max(self._now_ms, at_ms)
        exponent = (at_ms - self._ref_ms) / (half_life * 86_400_000)
        if (self._now_ms - self._ref_ms) / (half_life * 86_400_000) > _MAX_EXPONENT:
            self._rescale(self._now_ms)
            exponent = (at_ms - self._now_ms) / (half_life * 86_400_000)
        return float(2.0**exponent)

    def _decay_now(self) -> float:
        """Factor turning stored weights into effective observations as of the latest delivery."""
        half_life = self.settings.half_life_days
        if half_life is None or self._ref_ms is None or self._now_ms is None:
            return 1.0
        return float(2.0 ** (-(self._now_ms - self._ref_ms) / (half_life * 86_400_000)))

    def _rescale(self, new_ref_ms: int) -> None:
        factor = self._decay_now()
        for histogram in (*self._lanes.values(), *self._bands.values(), *self._services.values()):
            histogram.rescale(factor)
        self._ref_ms = new_ref_ms

    def lane_histogram(self, lane: Lane) -> HoursHistogram | None:
        """What was learned on the lane itself (None before its first observation)."""
        return self._lanes.get((lane.service_id, lane.origin_region, lane.dest_region))

    def band_histogram(self, service_id: str, distance_km: float) -> HoursHistogram | None:
        return self._bands.get((service_id, distance_band(distance_km)))

    @property
    def lane_count(self) -> int:
        return len(self._lanes)
