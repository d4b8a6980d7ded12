"""One registry type for every plug-in family: methods, trunks, schemes and dataset sources."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bench.core.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> plug-ins of one ``kind``; ``@registry.register("name")`` adds one.

    Registering a name twice (for a different object) is a ValueError; asking for an unknown
    name is a BenchError that suggests a close match and lists the known names.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self.entries and self.entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self.entries[name] = obj
            return obj

        return decorate

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern``, sorted."""
        return sorted(n for n in self.entries if fnmatch.fnmatchcase(n, pattern))

    def get(self, name: str) -> T:
        if name not in self.entries:
            raise unknown_name(self.kind, name, list(self.entries))
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, plug-in) pairs, sorted by name."""
        return iter(sorted(self.entries.items()))
