"""How axis values, hash fields and Redis keys are spelled.

Layout (see docs/keys.md):

* one hash per metrica and time bucket, ``<prefix>:{<metrica>}:<bucket>`` where the bucket
  is ``all`` or the digits of the bucket's start (``2010``, ``201002``, ``20100207``,
  ``2010020713``, ``201002071305``);
* a field per combination of axis values: one *part* per axis joined with ``|``; a part is
  ``*`` for "every value" or ``=`` followed by the escaped value;
* ``#`` before a field names the event count of that combination (AveragedMetrica);
* the part ``!`` counts the values of an axis beyond its ``max_choices``; below a node of a
  hierarchical axis the overflow part is ``!`` followed by the node's path (``!out/se``);
* a metrica made with ``uniques=True`` also keeps one HyperLogLog per bucket and combination,
  ``<prefix>:{<metrica>}:u:<bucket>:<field>`` (no family prefix: ids are counted once).

Escaping maps ``\\`` to ``\\\\``, ``|`` to ``\\p`` and ``/`` to ``\\s`` so a value can never
contain the part separator nor the hierarchy separator; every string, including ``""``,
``"*"`` and ``"__all__"``, is thereby a value of its own.  The ``{...}`` hash tag puts all
keys of a metrica in one Redis Cluster slot.

Nothing here touches Redis or Django.
"""

from __future__ import annotations

from collections.abc import Sequence

ALL = "*"
#: The part that counts values an axis no longer stores (it reached max_choices).
OVERFLOW = "!"
VALUE_MARK = "="
PART_SEPARATOR = "|"
PATH_SEPARATOR = "/"
COUNT_MARK = "#"
ALL_TIME = "all"

_ESCAPES = (("\\", "\\\\"), ("|", "\\p"), ("/", "\\s"))
_UNESCAPES = {"\\": "\\", "p": "|", "s": "/"}


def escape(value: str) -> str:
    for raw, escaped in _ESCAPES:
        value = value.replace(raw, escaped)
    return value


def unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            code = next(chars, "")
            if code not in _UNESCAPES:
                raise ValueError(f"bad escape in stored value {text!r}")
            out.append(_UNESCAPES[code])
        else:
            out.append(char)
    return "".join(out)


def value_part(value: str) -> str:
    """The field part that selects one value of an axis."""
    return VALUE_MARK + escape(value)


def path_part(path: Sequence[str]) -> str:
    """The field part that selects a node (a path prefix) of a hierarchical axis."""
    if not path:
        return ALL
    return VALUE_MARK + PATH_SEPARATOR.join(escape(element) for element in path)


def overflow_part(parent: str) -> str:
    """The part counting the children of ``parent`` (``ALL``: the top level) past max_choices.

    Distinct per parent so each level of a hierarchy sums up; never a value part, since those
    start with ``=``.
    """
    return OVERFLOW if parent == ALL else OVERFLOW + parent[len(VALUE_MARK) :]


def decode_part(part: str) -> str:
    if not part.startswith(VALUE_MARK):
        raise ValueError(f"not a value part: {part!r}")
    return unescape(part[1:])


def decode_path_part(part: str) -> tuple[str, ...]:
    if part == ALL:
        return ()
    if not part.startswith(VALUE_MARK):
        raise ValueError(f"not a path part: {part!r}")
    return tuple(unescape(element) for element in part[1:].split(PATH_SEPARATOR))


def field(parts: Sequence[str]) -> str:
    return PART_SEPARATOR.join(parts)


def count_field(field_name: str) -> str:
    return COUNT_MARK + field_name


def metrica_base(prefix: str, name: str) -> str:
    """Common start of every key of one metrica, with its Cluster hash tag.

    Braces in the prefix would move the hash tag: ``{}`` would scatter a metrica over many
    slots (its kicks would fail on a cluster) and ``{x}`` would pile every metrica into one.
    """
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"STASTE_METRICS_PREFIX {prefix!r} must not contain '{{' or '}}' (Redis Cluster hash tags)")
    return f"{prefix}:{{{name}}}:"


def bucket_key(base: str, bucket: str) -> str:
    return base + bucket


def years_key(base: str) -> str:
    return base + "years"


def choices_key(base: str, axis_name: str) -> str:
    return base + "choices:" + escape(axis_name)


def signature_key(base: str) -> str:
    return base + "signature"


def writer_key(base: str, writer_id: str) -> str:
    """Where a buffered writer (one process) records the number of its last call written."""
    return base + "w:" + writer_id


def unique_prefix(base: str, bucket: str) -> str:
    """The start of the HyperLogLog keys of one bucket; a combination's field completes it.

    HyperLogLogs cannot live in a hash, so each (bucket, combination) is a key of its own,
    under the metrica's hash tag like every other key of it.
    """
    return base + "u:" + bucket + ":"


def family_infix(prefix: str) -> str:
    """Families whose prefix starts with '~' live in hashes of their own (e.g. histograms)."""
    return "h:" if prefix.startswith("~") else ""
