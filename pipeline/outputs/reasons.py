"""What a client reads for a job that was not rendered: a short reason in plain words, never the raw error (the full
reason stays in the report, the index and the metadata)."""

from __future__ import annotations

# The first pattern found in the error (lower case) names the reason; the order matters.
REASONS = (
    (("keep mask",), "nothing left to restyle"),
    (("room set",), "its room set's first photo was not rendered"),
    (("style_ref", "reference"), "style reference unavailable"),
    (("too small",), "photo too small"),
    (("too large", "pixels"), "photo too large"),
    (("room",), "unknown room"),
    (("no such file", "cannot read", "empty file", "not an image", "truncated", "cannot identify", "decode"),
     "photo unreadable"),
    (("already", "not overwritten"), "name already taken"),
    (("out of memory",), "out of memory"),
)  # fmt: skip


def client_reason(error: str | None) -> str:
    """A failed job's reason as a client may read it, e.g. `photo unreadable`."""
    text = (error or "").lower()
    for patterns, reason in REASONS:
        if any(pattern in text for pattern in patterns):
            return reason
    return "could not be restyled"


def not_rendered(error: str | None) -> str:
    """The card a failed job shows on the contact sheet: `not rendered (photo unreadable)`."""
    return f"not rendered ({client_reason(error)})"
