"""Values computed for the last few objects, remembered by the objects' identity.

A cycle hands the same table to several functions; what one of them derives from it (the
newest rows, the points grouped) is kept for the others. Keyed by ``id`` with a weak
reference, as an id is reused once its object is gone; the objects are treated as
read-only by whoever reads a value back.
"""

from __future__ import annotations

import weakref
from typing import Any


class ObjectCache:
    """At most ``kept`` values, the oldest dropped first."""

    def __init__(self, kept: int):
        self.kept = kept
        self._items: dict[int, tuple[weakref.ref, Any]] = {}

    def get(self, obj: object) -> Any | None:
        """The value remembered for ``obj`` itself, or None."""
        hit = self._items.get(id(obj))
        return hit[1] if hit is not None and hit[0]() is obj else None

    def put(self, obj: object, value: Any) -> None:
        for key in [k for k, (ref, _v) in self._items.items() if ref() is None]:
            del self._items[key]
        while len(self._items) >= self.kept:
            del self._items[next(iter(self._items))]
        self._items[id(obj)] = (weakref.ref(obj), value)
