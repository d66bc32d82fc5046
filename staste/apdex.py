"""Apdex from a histogram: how many requests satisfied their users, in one number from 0 to 1.

Apdex (the Application Performance Index) sorts responses by a target time T:
*satisfied* at most T, *tolerating* at most 4T, *frustrated* beyond; the score is
``(satisfied + tolerating / 2) / all``.  1 is every user satisfied, 0.5 every user
tolerating, 0 every user frustrated.

staste reads it from the fixed logarithmic histogram a metrica keeps (``staste.histogram``),
so it is available for any span, range and filter, summed in Redis like the percentiles.  The
histogram has ten buckets per factor of ten: a bucket that holds T (or 4T) is split linearly,
as if its values were spread evenly (as the percentiles are).  Only the requests in those two
buckets can be misplaced, so the score is within **half the share of requests that fall in the
bucket holding T and the one holding 4T** of the exact Apdex (for T = 500 ms: requests of
398 to 501 ms and of 1,995 to 2,512 ms); and exact when no request falls in them.

Nothing here touches Redis or Django.

>>> counts = [0] * 102
>>> counts[histogram.bucket_index(100)] = 6          # six requests of 100 ms: satisfied
>>> counts[histogram.bucket_index(1000)] = 2         # two of 1 s: tolerating (T = 500 ms)
>>> counts[histogram.bucket_index(5000)] = 2         # two of 5 s: frustrated
>>> score(counts, 500)
0.7
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from staste import histogram

#: The multiple of T up to which a response is tolerated (Apdex' definition).
TOLERATED = 4


def check_threshold(threshold: float) -> float:
    """``threshold`` (T, in the metrica's unit) as a float; ValueError unless it is a positive number."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < math.inf:
        raise ValueError(f"Apdex' target time T must be a positive number, not {threshold!r}")
    return float(threshold)


def at_most(counts: Sequence[int], limit: float) -> float:
    """How many of the counted values are at most ``limit``: the buckets below it whole, the
    bucket holding it in proportion (values spread evenly in it); none of the overflow bucket."""
    index = histogram.bucket_index(limit)
    below = sum(count for count in counts[:index] if count > 0)
    if index >= len(histogram.UPPER_BOUNDS):  # the overflow bucket: its values are unknown
        return float(below)
    lower, upper = histogram.bounds(index)
    held = counts[index] if counts[index] > 0 else 0
    return below + held * (limit - lower) / (upper - lower)


def score(counts: Sequence[int], threshold: float) -> float | None:
    """The Apdex of the values counted in ``counts`` (one count per histogram bucket) for a
    target time ``threshold``; None when nothing was counted."""
    threshold = check_threshold(threshold)
    if len(counts) != histogram.BUCKETS:
        raise ValueError(f"expected {histogram.BUCKETS} bucket counts, got {len(counts)}")
    total = sum(count for count in counts if count > 0)
    if not total:
        return None
    satisfied = at_most(counts, threshold)
    tolerated = at_most(counts, threshold * TOLERATED)
    # satisfied + (tolerated - satisfied) / 2
    return min(1.0, max(0.0, (satisfied + tolerated) / 2 / total))
