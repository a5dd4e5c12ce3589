"""Plan targets as data: list them; operators set and delete them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel, Field

from api import plan_queries
from api.deps import Db, require
from api.errors import NotFoundError
from api.keys import Role
from api.params import Text
from api.routes.plan import IndicatorName, Target

router = APIRouter(prefix="/targets", tags=["indicators"])
_operator = [Depends(require(Role.OPERATOR))]


class TargetRequest(BaseModel):
    """A target: the indicator, for a city or a province, to reach by a date.
    The same indicator, scope and due date again replaces the earlier value."""

    indicator: IndicatorName
    scope_type: Literal["city", "province"]
    scope: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
    comparison: Literal[">=", "<="] = ">="
    value: Annotated[float, Field(allow_inf_nan=False)]
    due: Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))]
    note: Text | None = None


@router.get("")
async def list_targets(db: Db, indicator: IndicatorName | None = None) -> list[Target]:
    """Every plan target, or those of one indicator."""
    return [Target.model_validate(dict(r)) for r in await plan_queries.list_targets(db, indicator)]


@router.post("", dependencies=_operator, responses={404: {"description": "unknown indicator"}})
async def set_target(db: Db, body: TargetRequest) -> Target:
    """Add a target, or replace the value of (indicator, scope, due)."""
    if await plan_queries.catalogue_entry(db, body.indicator) is None:
        raise NotFoundError(f"no indicator {body.indicator!r}; GET /v1/indicators lists them")
    row = await plan_queries.upsert_target(db, plan_queries.TargetValues(**body.model_dump()))
    return Target.model_validate(dict(row))


@router.delete(
    "/{target_id}",
    dependencies=_operator,
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such target"}},
)
async def delete_target(db: Db, target_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
    """Delete a target."""
    if not await plan_queries.delete_target(db, target_id):
        raise NotFoundError(f"no target {target_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
