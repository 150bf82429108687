"""``@value(frozen=True)``: the hot path's immutable value types.

To the type checker (and to mypyc, see ``make compile``) ``value`` is ``dataclasses.dataclass``:
mypy rejects any assignment to a field of a ``frozen=True`` value, so the domain's values stay
immutable. At run time it is a plain dataclass with ``unsafe_hash=True`` (the same ``==`` and hash
as a frozen one), slotted unless mypyc compiled it to a native class (which has no ``__dict__``
anyway): a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, five
times the cost of a plain one (1.3 against 0.26 µs for 12 fields), and a movement builds about
seven of these values on its way. mypyc only makes a class native (fields read as C struct members
by compiled code) when its decorator is ``dataclasses.dataclass`` by name, hence the alias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

__all__ = ["value"]

T = TypeVar("T")

if TYPE_CHECKING:
    from dataclasses import dataclass as value
else:

    def value(*, frozen: bool) -> Callable[[type[T]], type[T]]:
        def plain(cls: type[T]) -> type[T]:
            native = "__mypyc_attrs__" in cls.__dict__
            return dataclass(slots=not native, unsafe_hash=True)(cls)

        return plain
