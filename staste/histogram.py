"""Fixed logarithmic buckets for a distribution of values (latencies), and percentiles read back.

Why fixed: every process and every time bucket counts into the same buckets, so Redis adds
them up with plain HINCRBYs (across workers, minutes, days and axis values) and a percentile
of any span or filter is read from one hash.  Why logarithmic: a latency of 2 ms and one of
2 s deserve the same *relative* precision.  Ten buckets per decade from 0.001 to 10,000,000
(in the metrica's own unit, milliseconds for response times) bound the error of a percentile
to one bucket, at most 26% of the value before interpolation and usually a few percent after.

Nothing here touches Redis or Django.

>>> bucket_index(1.0), bounds(bucket_index(1.0))
(30, (0.7943282347242815, 1.0))
>>> percentile([0] * 30 + [4] + [0] * 71, 50)      # four values in (0.794, 1.0]
0.8971641173621407
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

#: Buckets per factor of ten.
STEPS_PER_DECADE = 10
#: The upper bound of the first bucket is 10 ** LOWEST_EXPONENT; it also holds 0 and below.
LOWEST_EXPONENT = -3
#: Values above 10 ** HIGHEST_EXPONENT all land in the last (overflow) bucket.
HIGHEST_EXPONENT = 7

#: Upper bounds (inclusive) of every bucket but the overflow bucket, from 0.001 to 1e7.  Whole
#: exponents are computed from integers so that 1, 10, 100... are exact bounds.
UPPER_BOUNDS: tuple[float, ...] = tuple(
    10.0 ** (exponent / STEPS_PER_DECADE)
    for exponent in range(LOWEST_EXPONENT * STEPS_PER_DECADE, HIGHEST_EXPONENT * STEPS_PER_DECADE + 1)
)
#: Number of buckets: one per upper bound, plus the overflow bucket.
BUCKETS = len(UPPER_BOUNDS) + 1

#: Histogram counters are a family of their own: the bucket's index behind this mark.  A family
#: starting with "~" is kept in hashes of its own (``<base>h:<bucket>``, see
#: ``staste.keys.family_infix``), away from the sums and counts.
MARK = "~"
#: The field prefix (family) of each bucket, by index.
PREFIXES: tuple[str, ...] = tuple(f"{MARK}{index}" for index in range(BUCKETS))

_bisect_left = bisect.bisect_left


def bucket_index(value: float) -> int:
    """The bucket ``value`` falls in: the first whose upper bound is >= ``value``."""
    return _bisect_left(UPPER_BOUNDS, value)


def bounds(index: int) -> tuple[float, float]:
    """(lower, upper) limits of bucket ``index``: it holds lower < value <= upper.

    The first bucket starts at 0 (it also counts zero and negative values); the overflow
    bucket ends at infinity.
    """
    if not 0 <= index < BUCKETS:
        raise IndexError(f"no histogram bucket {index}; there are {BUCKETS}")
    lower = UPPER_BOUNDS[index - 1] if index else 0.0
    upper = UPPER_BOUNDS[index] if index < len(UPPER_BOUNDS) else math.inf
    return lower, upper


def check_percentile(p: float) -> float:
    """``p`` as a float; ValueError unless it is a number from 0 to 100."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 100:
        raise ValueError(f"a percentile is a number from 0 to 100, not {p!r}")
    return float(p)


def percentiles(counts: Sequence[int], ps: Iterable[float]) -> dict[float, float | None]:
    """The value below which ``p`` percent of the counted values lie, for each ``p`` in ``ps``.

    ``counts`` holds the number of values per bucket.  Within its bucket the value is
    interpolated linearly, as if the bucket's values were spread evenly (Prometheus'
    ``histogram_quantile`` does the same); a percentile in the overflow bucket is its lower
    bound.  None for every ``p`` when nothing was counted.
    """
    wanted = [(p, check_percentile(p)) for p in ps]
    if len(counts) != BUCKETS:
        raise ValueError(f"expected {BUCKETS} bucket counts, got {len(counts)}")
    clean = [count if count > 0 else 0 for count in counts]
    total = sum(clean)
    if not total:
        return {p: None for p, _ in wanted}
    found: dict[float, float | None] = {}
    for p, share in wanted:
        rank = share / 100 * total
        cumulative = 0
        for index, count in enumerate(clean):
            if not count:
                continue
            if cumulative + count >= rank:
                lower, upper = bounds(index)
                if math.isinf(upper):
                    found[p] = lower
                else:
                    found[p] = lower + (upper - lower) * (rank - cumulative) / count
                break
            cumulative += count
    return found


def percentile(counts: Sequence[int], p: float) -> float | None:
    """``percentiles(counts, [p])[p]``."""
    return percentiles(counts, [p])[p]
