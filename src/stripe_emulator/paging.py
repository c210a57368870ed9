"""Reading Stripe's list parameters (``limit``, cursors, ``created`` ranges)."""

from __future__ import annotations

from stripe_emulator.errors import ValidationError
from stripe_emulator.forms import Params
from stripe_emulator.store import CreatedRange, Page


def page(params: Params) -> Page:
    limit = params.integer("limit", minimum=1)
    if limit is not None and limit > 100:
        raise ValidationError(
            "This value must be less than or equal to 100.",
            code="parameter_invalid_integer",
            param="limit",
        )
    return Page(
        limit=limit or 10,
        starting_after=params.text("starting_after"),
        ending_before=params.text("ending_before"),
        created=created(params),
    )


def created(params: Params) -> CreatedRange:
    if not params.has("created"):
        return CreatedRange()
    try:
        exact = params.integer("created")
    except ValidationError:
        exact = None
    if exact is not None:
        return CreatedRange(gte=exact, lte=exact)
    bounds = params.mapping("created") or {}
    unknown = sorted(set(bounds) - {"gt", "gte", "lt", "lte"})
    if unknown:
        name = f"created[{unknown[0]}]"
        raise ValidationError(
            f"Received unknown parameter: {name}", code="parameter_unknown", param=name
        )
    values: dict[str, int] = {}
    for name, raw in bounds.items():
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise ValidationError(f"Invalid integer: {raw}", param=f"created[{name}]") from None
    return CreatedRange(**values)
