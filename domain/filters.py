"""Metadata filters on vectors: equality, membership in a list of values, numeric ranges.

A filter maps field names to what the field must hold: a scalar (equality; on a list field,
membership of the scalar), a list (one of them), or a :class:`Range` (a number within the
bounds; dates are numbers, see ``domain.metadata``). Every vector backend keeps exactly the
meaning of :func:`matches` (the contract suite checks it).
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from domain.metadata import (
    SYSTEM_KEYS,
    InvalidMetadataError,
    MetadataValue,
    as_date_seconds,
    parse_text_value,
)

__all__ = [
    "FilterValue",
    "MetadataFilter",
    "MetadataValue",
    "Range",
    "from_json",
    "matches",
    "parse_conditions",
]


@dataclass(frozen=True)
class Range:
    """A number within the bounds that are given: ``gt``/``gte`` below, ``lt``/``lte`` above.
    Booleans, strings, lists and missing fields are never within a range."""

    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    def __post_init__(self) -> None:
        bounds = self.bounds()
        if not bounds:
            raise InvalidMetadataError("a range needs at least one bound")
        for name, bound in bounds.items():
            if not _is_number(bound) or not math.isfinite(bound):
                raise InvalidMetadataError(f"range bound {name} must be a finite number")

    def bounds(self) -> dict[str, float]:
        """The bounds given, by name (``gte``, ``gt``, ``lte``, ``lt``)."""
        return {name: value for name in ("gte", "gt", "lte", "lt")
                if (value := getattr(self, name)) is not None}

    def holds(self, value: object) -> bool:
        if not _is_number(value):
            return False
        number = float(value)  # type: ignore[arg-type]
        return ((self.gte is None or number >= self.gte) and (self.gt is None or number > self.gt)
                and (self.lte is None or number <= self.lte)
                and (self.lt is None or number < self.lt))


FilterValue = str | int | float | bool | Sequence[str | int | float] | Range
MetadataFilter = Mapping[str, FilterValue]


def matches(metadata: Mapping[str, MetadataValue], wanted: Mapping[str, object] | None) -> bool:
    """Whether metadata satisfies every field of the filter.

    A scalar filter value means equality (or, for a list-valued field, membership); a list
    filter value means the field equals one of them (or, for a list field, shares one); a
    Range means a number within it.
    """
    if not wanted:
        return True
    for field, expected in wanted.items():
        if field not in metadata:
            return False
        actual = metadata[field]
        if isinstance(expected, Range):
            if not expected.holds(actual):
                return False
            continue
        options = (
            list(expected)
            if isinstance(expected, Sequence) and not isinstance(expected, str)
            else [expected]
        )
        values = actual if isinstance(actual, list) else [actual]
        if not any(_same(value, option) for value in values for option in options):
            return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(value: object, option: object) -> bool:
    """Equality that does not take True for 1 (Python's bool is an int)."""
    return (type(value) is type(option) and value == option) or (
        _is_number(value) and _is_number(option) and value == option)


# -- filters as users write them --------------------------------------------------------------

_CONDITION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<|=)(.*)", re.DOTALL)
_OPERATORS = {">=": "gte", ">": "gt", "<=": "lte", "<": "lt"}


def parse_conditions(conditions: Iterable[str]) -> dict[str, FilterValue]:
    """Conditions as text (the command line): ``name=value`` (equality; the same name again
    means one of the values), ``name>=value``, ``name>value``, ``name<=value``,
    ``name<value`` (a range; two of them on one name make one range). Values are read as
    metadata values are (``domain.metadata.parse_text_value``: numbers, true/false, ISO
    dates). InvalidMetadataError names a condition that is not one."""
    equal: dict[str, list[MetadataValue]] = {}
    ranges: dict[str, dict[str, float]] = {}
    for condition in conditions:
        found = _CONDITION.fullmatch(condition.strip())
        if found is None:
            raise InvalidMetadataError(
                f"{condition!r} is not a condition: name=value, name>=value, name>value, "
                "name<=value or name<value")
        name, operator, text = found.group(1), found.group(2), found.group(3).strip()
        value = parse_text_value(text)
        if operator == "=":
            equal.setdefault(name, []).append(value)
            continue
        if not _is_number(value):
            raise InvalidMetadataError(
                f"{condition!r}: a range needs a number or a date, got {text!r}")
        ranges.setdefault(name, {})[_OPERATORS[operator]] = float(value)  # type: ignore[arg-type]
    both = sorted(set(equal) & set(ranges))
    if both:
        raise InvalidMetadataError(f"{both[0]!r} has both an equality and a range")
    wanted: dict[str, FilterValue] = {}
    for name, values in equal.items():
        if len(values) == 1 and not isinstance(values[0], list):
            wanted[name] = values[0]
        elif all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            wanted[name] = [v for v in values if isinstance(v, str | int | float)]
        else:
            raise InvalidMetadataError(f"{name!r}: one of several values takes text or numbers")
    for name, bounds in ranges.items():
        wanted[name] = Range(**bounds)
    return wanted


def from_json(raw: Mapping[str, object]) -> dict[str, FilterValue]:
    """A filter as JSON gives it (the HTTP API): a scalar, a list of scalars, or a range
    object ``{"gte"|"gt"|"lte"|"lt": number or ISO date}``. On custom fields (not the
    system's) a string in ISO date form is its Unix seconds, as it was when stored."""
    wanted: dict[str, FilterValue] = {}
    for name, value in raw.items():
        custom = name not in SYSTEM_KEYS
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(_OPERATORS.values()))
            if unknown:
                raise InvalidMetadataError(
                    f"filter {name!r}: unknown range bound {unknown[0]!r} (gte, gt, lte, lt)")
            wanted[name] = Range(**{bound: _bound(name, item) for bound, item in value.items()})
        elif isinstance(value, list):
            wanted[name] = [_scalar(name, item, custom) for item in value]
        else:
            wanted[name] = _scalar(name, value, custom)
    return wanted


def _scalar(name: str, value: object, custom: bool) -> str | int | float | bool:
    if isinstance(value, str):
        seconds = as_date_seconds(value) if custom else None
        return value if seconds is None else seconds
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise InvalidMetadataError(f"filter {name!r}: {value!r} is not a string, number or boolean")


def _bound(name: str, value: object) -> float:
    if isinstance(value, str):
        seconds = as_date_seconds(value)
        if seconds is not None:
            return float(seconds)
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    raise InvalidMetadataError(f"filter {name!r}: a range bound is a number or an ISO date")
