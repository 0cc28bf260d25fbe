"""Metadata filters on vectors: equality, or membership in a list of values."""

from collections.abc import Mapping, Sequence

MetadataValue = str | int | float | bool | list[str]


def matches(metadata: Mapping[str, MetadataValue], wanted: Mapping[str, object] | None) -> bool:
    """Whether metadata satisfies every field of the filter.

    A scalar filter value means equality (or, for a list-valued field, membership); a list
    filter value means the field equals one of them (or, for a list field, shares one).
    """
    if not wanted:
        return True
    for field, expected in wanted.items():
        if field not in metadata:
            return False
        actual = metadata[field]
        options = (
            list(expected)
            if isinstance(expected, Sequence) and not isinstance(expected, str)
            else [expected]
        )
        values = actual if isinstance(actual, list) else [actual]
        if not any(_same(value, option) for value in values for option in options):
            return False
    return True


def _same(value: object, option: object) -> bool:
    """Equality that does not take True for 1 (Python's bool is an int)."""
    return (type(value) is type(option) and value == option) or (
        not isinstance(value, bool) and not isinstance(option, bool)
        and isinstance(value, int | float) and isinstance(option, int | float)
        and value == option)
