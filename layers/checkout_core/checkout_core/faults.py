"""Named fault-injection points, for failure tests.

`FAULTS="cancel.after_lock=crash"` makes the invocation that reaches that point stop dead, as if its
Lambda execution environment died there: `InjectedCrash` derives from BaseException so no handler in
the code catches it. Unset (always, in a deployment), a point costs one environment lookup.
"""

from __future__ import annotations

import os


class InjectedCrash(BaseException):
    """The invocation dies here."""


def inject(point: str) -> None:
    configured = os.environ.get("FAULTS")
    if not configured:
        return
    for entry in configured.split(","):
        name, _, action = entry.partition("=")
        if name.strip() == point and action.strip() == "crash":
            raise InjectedCrash(point)
