"""The seed's write algorithm, the baseline staste's kicks are compared with.

The seed counted a kick by sending, in one redis-py pipeline, one ``HINCRBY`` per combination
of axis values and per time bucket, with the combinations expanded in Python.  This keeps
exactly that, with the key and field spelling of staste (so both write hashes of the same
sizes, and Redis does the same hash work) and in its most favourable form: no MULTI/EXEC
around the pipeline, and none of the extra writes staste makes in the same round trip (the
stored-choices and years sets, bucket expiry).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from typing import Any

import redis

from staste import keys, timescale


class SeedMetrica:
    """A metrica written the seed's way: ``kick()`` is one pipeline of HINCRBYs."""

    def __init__(self, client: redis.Redis, name: str, axis_names: Sequence[str], prefix: str = "seed") -> None:
        self.client = client
        self.axis_names = list(axis_names)
        self.base = keys.metrica_base(prefix, name)

    def kick(self, value: int = 1, date: datetime.datetime | None = None, **axis_values: Any) -> None:
        moment = date or datetime.datetime.now()
        spans = timescale.spans_of(moment, timescale.SCALES)
        options = [
            [keys.ALL] if axis_values.get(name) is None else [keys.ALL, keys.value_part(str(axis_values[name]))]
            for name in self.axis_names
        ]
        fields = [keys.field(combination) for combination in itertools.product(*options)]
        pipe = self.client.pipeline(transaction=False)
        for span in spans:
            key = keys.bucket_key(self.base, timescale.bucket_id(span))
            for field in fields:
                pipe.hincrby(key, field, value)
        pipe.execute()
