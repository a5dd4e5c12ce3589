"""Schemathesis over the API's own OpenAPI schema, in process, on the session database:
no answer is a 5xx, no /v1 operation answers without a key, no role is let past its due.

A short run per suite (``EXAMPLES`` per operation and run, a fixed seed); longer ones:
``citytel bench api-fuzz --examples N``.
"""

from __future__ import annotations

import asyncpg
import pytest
from conftest import ApiKeyFactory
from fastapi import FastAPI

from api.keys import Role
from api.main import api_routes
from bench.api_fuzz import ApiFuzzOptions, fuzz_app, seed_database

EXAMPLES = 15


@pytest.mark.timeout(300)
async def test_api_fuzz_finds_no_5xx_and_no_way_past_the_keys(
    app: FastAPI, db: asyncpg.Connection, api_key: ApiKeyFactory
) -> None:
    fixed = await seed_database(db)
    keys = {str(role): await api_key(role, f"fuzz-{role}") for role in Role}
    report = await fuzz_app(app, keys, ApiFuzzOptions(examples=EXAMPLES, seed=0, fixed=fixed))
    shown = "\n".join(
        f"{f.rule}: {f.operation} as {f.caller} -> {f.status}\n  {f.request}\n  {f.response}"
        for f in report.findings[:10]
    )
    assert report.findings == [], f"{len(report.findings)} finding(s):\n{shown}"
    assert report.server_errors == 0
    operations = {f"{m} {r.path}" for r in api_routes(app) for m in r.methods}
    assert set(report.operations) == operations
    assert report.cases >= 2 * len(operations)
    assert report.statuses[401] >= report.cases - 2 * EXAMPLES  # every /v1 case, no key
    assert report.statuses[403] > 0 and report.statuses[200] > 0
