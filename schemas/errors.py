"""The one error shape of medcorpus: a short stable reason code (what a reject row records) and a detail."""

from __future__ import annotations

import re

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


class ReasonError(Exception):
    """Something that cannot be used, and why: `reason` is a stable code such as `image_decode`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if not detail and _CODE.match(reason.partition(": ")[0]) and ": " in reason:
            # Beam re-raises a failed step's exception as `type(exc)(str(exc) + " [while running ...]")`:
            # take the code back out of the message.
            reason, detail = reason.split(": ", 1)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class UsageError(ReasonError, ValueError):
    """A command line that cannot be run as given (a bad option value, a missing option)."""

    def __init__(self, detail: str) -> None:
        super().__init__("usage", detail)
