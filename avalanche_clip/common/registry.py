"""Name → factory registries that fail fast.

Scenarios, strategies and models are registered under names so that configs and the CLI can
refer to them. An unknown name is an error that lists the known ones (and the closest match);
registering a name twice is an error, so two modules can never silently shadow each other.

Example::

    SCENARIOS = Registry("scenario")

    @SCENARIOS.register("digits", kind="class-incremental")
    def build_digits(...): ...

    SCENARIOS.get("digits")          # the function
    SCENARIOS.info("digits")         # {"kind": "class-incremental"}
    SCENARIOS.list("split-*")        # sorted names matching a glob
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """Raised when a registry is asked for a name it does not hold."""


class Registry(Generic[T]):
    """A named collection of factories with metadata.

    Args:
        kind: what is registered ("scenario", "strategy", ...); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` with free-form metadata ``info``."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            self._info[name] = dict(info)
            return obj

        return decorator

    def get(self, name: str) -> T:
        """The object registered under ``name``; an :class:`UnknownNameError` otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def info(self, name: str) -> dict[str, Any]:
        """Metadata given at registration (a copy)."""
        self.get(name)
        return dict(self._info[name])

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the glob ``pattern``."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

    def _unknown_message(self, name: str) -> str:
        known = self.list()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}; expected one of: {', '.join(known)}.{hint}"
