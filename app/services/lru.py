"""A thread-safe LRU whose values are made once per key (the app's caches of patients,
session copies and dose grids)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["OnceLRU"]


class OnceLRU:
    """Up to ``max_size`` values, the least recently used dropped first.

    :meth:`get` makes a missing value with ``make()`` outside the cache's lock; requests for
    the same key wait for that one call instead of making it again (requests for other keys do
    not wait).
    """

    def __init__(self, max_size: int):
        self.max_size = max_size
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, object] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: Hashable, make: Callable[[], object]):
        """The value of ``key``, made by ``make()`` if missing (an exception leaves none)."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:  # another thread may have made it while this one waited
                if key in self._values:
                    return self._values[key]
            try:
                value = make()
                with self._lock:
                    self._values[key] = value
                    while len(self._values) > self.max_size:
                        self._values.popitem(last=False)
            finally:
                with self._lock:
                    self._making.pop(key, None)
        return value

    def discard(self, keep: Callable[[Hashable, object], bool]) -> None:
        """Drop every entry for which ``keep(key, value)`` is False."""
        with self._lock:
            for key in [k for k, v in self._values.items() if not keep(k, v)]:
                del self._values[key]

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
