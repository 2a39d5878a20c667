"""moto keeps every model object it ever made, for its server's dashboard (`/moto-api/`): each `BaseModel`
instance is appended to its class's `instances_tracked` list and never removed. In a long-running runtime
that is every item version a write replaced, every copy a write takes of an item, every stream record
after the pipes consumed it and every SQS message after it was deleted: most of the runtime's memory
growth, none of it data. The runtime does not serve that dashboard, so it stops the tracking."""

from __future__ import annotations

from typing import Any


def install() -> None:
    from moto.core.common_models import BaseModel

    model: Any = BaseModel
    if getattr(model, "_checkout_untracked", False):
        return

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        return super(model, cls).__new__(cls)  # the next base's, as BaseModel's own does (some are dicts)

    model.__new__ = staticmethod(__new__)
    model._checkout_untracked = True
