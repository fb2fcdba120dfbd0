"""A thread's own setting for the length of a with-block (``fastgru.threads``,
``fastgru.backend``)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def scoped(local: Any, attr: str, value: Any) -> Iterator[Any]:
    """Set ``local.attr`` (a threading.local) to ``value`` inside the block, restoring what
    it was before however the block ends; blocks nest."""
    before = getattr(local, attr, None)
    setattr(local, attr, value)
    try:
        yield value
    finally:
        setattr(local, attr, before)
