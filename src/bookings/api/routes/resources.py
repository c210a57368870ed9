"""``/resources``: what can be booked, and when it is free."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from bookings.adapters.tables import resources
from bookings.api.deps import Caller, Services
from bookings.api.schemas import ERRORS, ResourceOut
from bookings.domain.model import TimeRange
from bookings.errors import InvalidRequest

router = APIRouter(prefix="/resources", tags=["resources"], responses=ERRORS)
_MAX_WINDOW_DAYS = 62


@router.get("")
async def list_resources(
    c: Services,
    _: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> list[ResourceOut]:
    """Bookable resources (guides, rooms, venues), by id, paged with ``after``."""
    async with c.db.transaction() as conn:
        rows = await conn.execute(
            sa.select(resources).where(resources.c.id > after).order_by(resources.c.id).limit(limit)
        )
        return [
            ResourceOut(id=r.id, kind=r.kind, name=r.name, hourly_rate_cents=r.hourly_rate_cents)
            for r in rows
        ]


@router.get("/{resource_id}/availability")
async def availability(
    c: Services,
    _: Caller,
    resource_id: Annotated[int, Path(ge=1, le=2**53)],
    start: Annotated[AwareDatetime, Query(alias="from")],
    end: Annotated[AwareDatetime, Query(alias="to")],
) -> dict[str, Any]:
    """Busy ranges and offered slots between ``from`` and ``to`` (cached in Redis)."""
    window = TimeRange(start, end)
    if window.duration.days > _MAX_WINDOW_DAYS:
        raise InvalidRequest(
            f"search at most {_MAX_WINDOW_DAYS} days at a time", code="window_too_long"
        )
    return await c.holds.availability(resource_id, window)
