"""Constraints declared beside each schema field, and the one engine that checks them.

A field states its rule where it is declared (in the spirit of scikit-learn's
``_parameter_constraints``)::

    epochs: int = constrained(30, Interval(1))
    mode: str = constrained("fixed", Choices(("fixed", "finder"), "grid mode"))

:func:`check_fields` checks every constrained field of a dataclass instance and raises
:class:`~pipeline.config.errors.StudyConfigError` with a message in one form,
``<key>=<value received> <what the rule wants>``, e.g. ``study.epochs=0 must be >= 1`` or
``finder.mode='cubic' is not a ramp; valid: exponential, linear``. Rules that relate two
fields are named functions beside the schema that uses them. Pure Python.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Optional, Sequence, Tuple

from pipeline.config.errors import StudyConfigError

#: The metadata key under which a field keeps its constraints.
CONSTRAINTS = "constraints"
#: The metadata key of a predicate on the whole instance: the field is checked only where it holds.
APPLIES = "applies"


def _number(value: float) -> str:
    return f"{value:g}"


class Constraint(abc.ABC):
    """One rule on one value: ``accepts`` tells whether it holds, ``describe`` what it wants."""

    @abc.abstractmethod
    def accepts(self, value: Any) -> bool:
        """Whether ``value`` satisfies the rule."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What the rule wants, as the end of a sentence about the value ("must be > 0")."""

    @abc.abstractmethod
    def invalid_example(self) -> Any:
        """A value this rule rejects (the negative tests are derived from it)."""

    def message(self, key: str, value: Any) -> str:
        """The error message: the key, the value received and what the rule wants."""
        return f"{key}={value!r} {self.describe()}"


@dataclass(frozen=True)
class Interval(Constraint):
    """A number within bounds; ``None`` leaves a side open-ended.

    Attributes:
        low: The lower bound, or None.
        high: The upper bound, or None.
        closed: Which bounds belong to the interval: ``"both"``, ``"left"``, ``"right"`` or
            ``"neither"``.
        integer: Only integers (not booleans) are accepted.
        noun: Names the value in the message where only one bound is given ("a rate > 0").
        note: Appended to the message, e.g. what 0 means.
    """

    low: Optional[float] = None
    high: Optional[float] = None
    closed: Literal["both", "left", "right", "neither"] = "left"
    integer: bool = False
    noun: str = ""
    note: str = ""
    #: Infinity is rejected unless False (a factor with no upper limit may be infinite).
    finite: bool = True

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        if self.low is not None and not (value >= self.low if self.closed in ("both", "left") else value > self.low):
            return False
        if self.high is not None and not (value <= self.high if self.closed in ("both", "right") else value < self.high):
            return False
        return True

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            text = f"must be in {left}{_number(self.low)}, {_number(self.high)}{right}"
        elif self.low is not None:
            sign = ">=" if self.closed in ("both", "left") else ">"
            noun = self.noun or ("an integer" if self.integer else "")
            text = f"must be {noun + ' ' if noun else ''}{sign} {_number(self.low)}"
        else:
            sign = "<=" if self.closed in ("both", "right") else "<"
            text = f"must be {sign} {_number(self.high)}"  # type: ignore[arg-type]
        return f"{text} {self.note}" if self.note else text

    def invalid_example(self) -> Any:
        step = 1 if self.integer else 0.5
        if self.high is not None:
            return self.high if self.closed in ("left", "neither") else self.high + step
        return self.low if self.closed in ("right", "neither") else self.low - step  # type: ignore[operator]


@dataclass(frozen=True)
class Choices(Constraint):
    """One of a fixed set of values.

    Attributes:
        values: The valid choices, in the order the message lists them.
        noun: What a choice is ("grid mode"); the message reads ``is not a <noun>; valid: ...``.
        wants: Replaces that message with ``must be <wants>`` where the choices need explaining.
    """

    values: Tuple[Any, ...] = ()
    noun: str = "valid choice"
    wants: str = ""

    def accepts(self, value: Any) -> bool:
        return value in self.values

    def describe(self) -> str:
        if self.wants:
            return f"must be {self.wants}"
        return f"is not a {self.noun}; valid: {', '.join(str(choice) for choice in self.values)}"

    def invalid_example(self) -> Any:
        return "no-such-choice" if all(isinstance(choice, str) for choice in self.values) else max(self.values) + 1


@dataclass(frozen=True)
class Matches(Constraint):
    """A string matching a regular expression (whole string); ``excluded`` values never match."""

    pattern: str = ""
    wants: str = ""
    excluded: Tuple[str, ...] = ()
    example: str = ""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value not in self.excluded and re.fullmatch(self.pattern, value) is not None

    def describe(self) -> str:
        return self.wants

    def invalid_example(self) -> Any:
        return self.example


@dataclass(frozen=True)
class NonEmpty(Constraint):
    """A list with at least one item; ``hint`` says what to give instead."""

    hint: str = ""

    def accepts(self, value: Any) -> bool:
        return len(value) > 0

    def describe(self) -> str:
        return f"is empty: {self.hint}"

    def message(self, key: str, value: Any) -> str:
        return f"{key} is empty: {self.hint}"

    def invalid_example(self) -> Any:
        return []


@dataclass(frozen=True)
class Unique(Constraint):
    """A list without repeated items."""

    def accepts(self, value: Any) -> bool:
        return len(set(value)) == len(value)

    def describe(self) -> str:
        return "has duplicates"

    def invalid_example(self) -> Any:
        return ["a", "a"]


@dataclass(frozen=True)
class Items(Constraint):
    """Every item of a list satisfies ``rule``; the message names the first item that does not."""

    rule: Constraint = dataclasses.field(default_factory=lambda: Interval(0))

    def accepts(self, value: Any) -> bool:
        return all(self.rule.accepts(item) for item in value)

    def describe(self) -> str:
        return f"has an item that {self.rule.describe()}"

    def message(self, key: str, value: Any) -> str:
        bad = next(item for item in value if not self.rule.accepts(item))
        return f"{key} contains {bad!r}, which {self.rule.describe()}"

    def invalid_example(self) -> Any:
        return [self.rule.invalid_example()]


@dataclass(frozen=True)
class Satisfies(Constraint):
    """A rule too particular for the classes above: a predicate and what it wants."""

    test: Callable[[Any], bool] = bool
    wants: str = ""
    example: Any = None

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def describe(self) -> str:
        return f"must be {self.wants}"

    def invalid_example(self) -> Any:
        return self.example


def constrained(
    default: Any = dataclasses.MISSING,
    *constraints: Constraint,
    default_factory: Any = dataclasses.MISSING,
    applies: Optional[Callable[[Any], bool]] = None,
) -> Any:
    """A dataclass field with its constraints (checked in order, the first failing one reports).

    ``applies`` is a predicate on the whole instance: where it is false the field is unused
    and not checked (a grid's bounds when the grid lists its rates).
    """
    metadata = {CONSTRAINTS: constraints, APPLIES: applies}
    if default is not dataclasses.MISSING and default_factory is not dataclasses.MISSING:
        raise TypeError("give a default or a default_factory, not both")
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_constraints(schema: Any) -> Iterator[Tuple[str, Tuple[Constraint, ...]]]:
    """Each constrained field of a dataclass (class or instance) with its constraints."""
    for item in dataclasses.fields(schema):
        constraints = item.metadata.get(CONSTRAINTS)
        if constraints:
            yield item.name, constraints


def check_value(key: str, value: Any, constraints: Sequence[Constraint]) -> None:
    """Raise StudyConfigError for the first constraint ``value`` breaks (None is unset: no check)."""
    if value is None:
        return
    for constraint in constraints:
        if not constraint.accepts(value):
            raise StudyConfigError(constraint.message(key, value))


def check_fields(instance: Any, prefix: str) -> None:
    """Check every constrained field of a dataclass instance, then its dataclass-valued fields."""
    for item in dataclasses.fields(instance):
        applies = item.metadata.get(APPLIES)
        if applies is not None and not applies(instance):
            continue
        value = getattr(instance, item.name)
        if dataclasses.is_dataclass(value):
            check_fields(value, f"{prefix}.{item.name}")
        else:
            check_value(f"{prefix}.{item.name}", value, item.metadata.get(CONSTRAINTS, ()))
