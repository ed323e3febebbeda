"""Warnings: once per message for the whole process, or once per key for one fit (:class:`WarningLedger`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable

__all__ = ["TopologyWarning", "WarningLedger", "warn_once"]

_SEEN: set[str] = set()


class TopologyWarning(UserWarning):
    """Warnings of lightning-topo: a layer that cannot be measured, a likely configuration mistake."""


def warn_once(message: str, category: type[Warning] = TopologyWarning) -> None:
    """Warn with ``message`` unless this process has shown it already."""
    if message in _SEEN:
        return
    _SEEN.add(message)
    warnings.warn(message, category, stacklevel=3)


class WarningLedger:
    """Shows each distinct problem once: a warning's ``key`` (e.g. ``(layer, kind)``) is shown the first time only,
    until :meth:`reset` (the callback resets it when a fit starts). ``emit(message)`` shows it; by default a
    :class:`TopologyWarning`."""

    def __init__(self, emit: Callable[[str], None] | None = None) -> None:
        self._seen: set[Hashable] = set()
        self._emit = emit or _warn

    def reset(self) -> None:
        self._seen.clear()

    def __call__(self, key: Hashable, message: str) -> None:
        if key in self._seen:
            return
        self._seen.add(key)
        self._emit(message)


def _warn(message: str) -> None:
    warnings.warn(message, TopologyWarning, stacklevel=4)
