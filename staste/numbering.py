"""The numbered-call header: who sent a script call and which call it follows, so that Redis
runs each call once, and never before the call it follows.

Why: a writer that lost a reply (a timeout, a reset connection) cannot know whether its call
ran, so it sends it again; and a buffer sends calls before the replies of those before them
came back, so a call may reach Redis behind one that was refused.  Numbers settle both.  This
module is the one place the header is built, and its TTLs set; every numbered script (kick.lua,
counters.lua, ids.lua) reads it the same way, through ``numbered()`` in lua/prelude.lua.

The wire format: the writer's key (``keys.writer_key``, in the metrica's hash slot) is the
call's last KEY, and ARGV[1] is ``'number|ttl|prev'`` (``''``: a call not numbered):

* ``number`` grows with each call of the writer;
* the key holds the number of the writer's last call that ran, for ``ttl`` seconds after it;
* ``prev`` is the number of the call it follows under the same key, empty when it names none:
  a synchronous kick (its writer has one call at a time in flight), or a buffer's opening
  call under a key (a no-op: see staste.buffer.chain).

What Redis does with it (``numbered()`` in lua/prelude.lua), the key's number being ``last``
(none when the key is missing):

1. ``last >= number``: the call already ran (it is a copy sent again): it writes nothing and
   answers -1.
2. ``prev`` given and ``last`` is not ``prev`` (a missing key included): the call it follows
   has not run, or Redis lost the key; it writes nothing and answers ``STASTE_GAP <last>``
   (0 for a missing key).
3. Otherwise it stores its number (the key's TTL starts again) and runs; a call that fails
   after that takes back what it wrote and puts the key back as it was (counters.lua).

Only the writer can tell a gap whose predecessor has not run from a key Redis lost (it knows
which of its calls were confirmed), and only the writer knows which of its calls may have run
(their replies were lost): what it does with each answer is staste.buffer.chain's job.

>>> stamped(["k"], ["", "1|0"], Numbers("s:{m}:w:ab", 7, BUFFER_TTL, prev=5))
(['k', 's:{m}:w:ab'], ['7|604800|5', '1|0'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

#: How long Redis remembers a buffer's last call, in seconds.  A call whose reply was lost is
#: sent again by the buffer's next flush (seconds later, or when Redis is back), well within a
#: week; a buffer idle for longer finds its key gone, which it recognises (rule 2) and handles.
BUFFER_TTL = 7 * 24 * 3600
#: How long Redis remembers a synchronous writer's last call, in seconds.  A call is only ever
#: sent again within one ``kick()`` (redis-py's retry, within the socket timeouts), and a copy
#: held up in a stalled Redis runs right after the original once Redis resumes; ten minutes is
#: ample, and bounds the keys to the writers that kicked in the last ten minutes.
SYNC_TTL = 600

#: ARGV[1] of a call that is not numbered.
UNNUMBERED = ""

#: How a numbered call's error reply starts when it wrote nothing because the call it follows
#: has not run, or the writer key is gone (followed by the key's number, 0 when missing).
GAP = "STASTE_GAP"


class Numbers(NamedTuple):
    """The numbers of one call: see the module's docstring."""

    writer_key: str
    number: int
    ttl: int
    prev: int | None = None

    def header(self) -> str:
        return f"{self.number}|{self.ttl}|{'' if self.prev is None else self.prev}"


def stamped(script_keys: Sequence[str], args: Sequence[Any], numbers: Numbers) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of an unnumbered call (ARGV[1] ``UNNUMBERED``), numbered by ``numbers``."""
    return [*script_keys, numbers.writer_key], [numbers.header(), *args[1:]]
