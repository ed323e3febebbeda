"""Warn once per message (the module-level cache of Lightning's ``rank_zero_warn`` style)."""

from __future__ import annotations

import warnings

_SEEN: set[str] = set()


class TopologyWarning(UserWarning):
    """Warnings of lightning-topo: a layer that cannot be measured, a likely configuration mistake."""


def warn_once(message: str, category: type[Warning] = TopologyWarning) -> None:
    if message in _SEEN:
        return
    _SEEN.add(message)
    warnings.warn(message, category, stacklevel=3)
