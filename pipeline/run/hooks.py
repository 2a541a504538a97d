"""What the caller sees while a run goes: progress events, models loading, one-line notices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def _ignore(*args, **kwargs) -> None:
    return None


@dataclass
class Hooks:
    """What the caller sees while a run goes: progress events, models loading, one-line notices."""

    on_event: Callable[..., None] = field(default=_ignore)
    on_model: Callable[[str], None] | None = None
    notice: Callable[[str], None] = field(default=_ignore)
