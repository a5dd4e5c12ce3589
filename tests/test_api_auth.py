"""API keys and roles: every /v1 route needs a key, 401 and 403 are distinct, keys are
stored as salted hashes, revocable, and managed over the API and the CLI."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
import httpx
import pytest
from click.testing import Result
from conftest import ApiKeyFactory, ClientFactory
from typer.testing import CliRunner

import api.keys
from api.keys import Role, parse_key
from api.main import api_routes, create_app
from citytel.cli import app as cli
from core.settings import ApiSettings
from core.urls import DatabaseUrl

# Built only to list its routes; it never connects.
ROUTES = [
    r
    for r in api_routes(create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1/x")))
    if r.path.startswith("/v1/")
]
OPERATIONS = [(method, r.path, r.role) for r in ROUTES for method in sorted(r.methods)]
PATH_VALUES = {
    "device_id": "p1",
    "city": "alpha",
    "kind": "pole",
    "key_id": "0123abcd",
    "name": "signal_timing_coverage",
    "target_id": "1",
}
ROLE_BELOW = {Role.OPERATOR: Role.VIEWER, Role.ADMIN: Role.OPERATOR}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m[1]], path)


def operation_id(operation: tuple[str, str, Role | None]) -> str:
    return f"{operation[0]} {operation[1]}"


def test_every_v1_route_requires_a_role() -> None:
    assert len(OPERATIONS) >= 17
    assert [op for op in OPERATIONS if op[2] is None] == []


@pytest.mark.parametrize("operation", OPERATIONS, ids=operation_id)
async def test_every_v1_route_refuses_a_missing_key_with_401(
    anonymous_client: httpx.AsyncClient, operation: tuple[str, str, Role]
) -> None:
    method, path, _ = operation
    response = await anonymous_client.request(method, concrete(path), json={})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "operation", [op for op in OPERATIONS if op[2] in ROLE_BELOW], ids=operation_id
)
async def test_every_v1_route_refuses_a_lower_role_with_403(
    client_for: ClientFactory, api_key: ApiKeyFactory, operation: tuple[str, str, Role]
) -> None:
    method, path, role = operation
    http = client_for(await api_key(ROLE_BELOW[role]))
    response = await http.request(method, concrete(path), json={})
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden" and str(role) in error["message"]


async def test_probes_and_docs_need_no_key(anonymous_client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert (await anonymous_client.get(path)).status_code == 200, path


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
async def test_a_key_works_as_bearer_and_as_x_api_key(
    client_for: ClientFactory, api_key: ApiKeyFactory, header: str
) -> None:
    http = client_for(await api_key(Role.VIEWER), header=header)
    assert (await http.get("/v1/devices")).status_code == 200


@pytest.mark.parametrize(
    "presented",
    [
        "not-a-key",
        "ctk_0123abcd_" + "A" * 43,  # well-formed, no such key
        "Basic dXNlcjpwYXNz",
        "ctk_0123abcd_short",
    ],
)
async def test_a_bad_key_is_401(client_for: ClientFactory, presented: str) -> None:
    response = await client_for(presented, header="x-api-key").get("/v1/devices")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")


async def test_a_wrong_secret_for_a_real_key_id_is_401(
    client_for: ClientFactory, api_key: ApiKeyFactory
) -> None:
    key = parse_key(await api_key(Role.ADMIN))
    assert key is not None
    forged = f"ctk_{key.key_id}_{'B' * 43}"
    assert (await client_for(forged).get("/v1/devices")).status_code == 401


async def test_a_revoked_key_is_401(
    client_for: ClientFactory, api_key: ApiKeyFactory, admin_client: httpx.AsyncClient
) -> None:
    full = await api_key(Role.OPERATOR)
    http = client_for(full)
    assert (await http.get("/v1/devices")).status_code == 200
    key = parse_key(full)
    assert key is not None
    revoked = await admin_client.delete(f"/v1/keys/{key.key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await http.get("/v1/devices")).status_code == 401
    again = await admin_client.delete(f"/v1/keys/{key.key_id}")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    missing = await admin_client.delete("/v1/keys/ffffffff")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


async def test_only_a_salted_hash_of_the_key_is_stored(
    api_key: ApiKeyFactory, db: asyncpg.Connection
) -> None:
    first, second = await api_key(Role.VIEWER), await api_key(Role.VIEWER)
    rows = {r["id"]: r for r in await db.fetch("SELECT * FROM api_keys")}
    for full in (first, second):
        key = parse_key(full)
        assert key is not None
        row = rows[key.key_id]
        stored = " ".join(str(v) for v in row.values()) + bytes(row["secret_hash"]).hex()
        assert key.secret not in stored and full not in stored
        assert bytes(row["secret_hash"]) == api.keys.hash_secret(bytes(row["salt"]), key.secret)
    salts = {bytes(r["salt"]) for r in rows.values()}
    assert len(salts) == 2


async def test_the_secret_is_compared_in_constant_time(
    client_for: ClientFactory, api_key: ApiKeyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = api.keys.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api.keys.hmac, "compare_digest", spy)
    assert (await client_for(await api_key()).get("/v1/devices")).status_code == 200
    assert len(calls) == 1 and len(calls[0][0]) == 32


async def test_last_used_is_recorded_at_most_once_a_minute(
    client_for: ClientFactory, api_key: ApiKeyFactory, db: asyncpg.Connection
) -> None:
    full = await api_key(Role.VIEWER)
    key = parse_key(full)
    assert key is not None
    sql = "SELECT last_used_at FROM api_keys WHERE id = $1"
    assert await db.fetchval(sql, key.key_id) is None
    http = client_for(full)
    await http.get("/v1/devices")
    first = await db.fetchval(sql, key.key_id)
    await http.get("/v1/events")
    assert first is not None and await db.fetchval(sql, key.key_id) == first


async def test_keys_api_creates_lists_and_shows_the_key_once(
    admin_client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    created = await admin_client.post("/v1/keys", json={"role": "viewer", "name": "grafana"})
    assert created.status_code == 201
    body = created.json()
    assert (body["role"], body["name"], body["revoked_at"]) == ("viewer", "grafana", None)
    assert body["key"].startswith(f"ctk_{body['id']}_")
    assert (await client_for(body["key"]).get("/v1/devices")).status_code == 200
    listed = (await admin_client.get("/v1/keys")).json()
    mine = next(k for k in listed if k["id"] == body["id"])
    assert "key" not in mine and mine["last_used_at"] is not None
    assert body["key"] not in (await admin_client.get("/v1/keys")).text


async def test_keys_api_refuses_an_unknown_role_and_a_nul_name(
    admin_client: httpx.AsyncClient,
) -> None:
    bad_role = await admin_client.post("/v1/keys", json={"role": "root"})
    bad_name = await admin_client.post("/v1/keys", json={"role": "viewer", "name": "a\x00"})
    assert (bad_role.status_code, bad_name.status_code) == (422, 422)


async def test_a_viewer_cannot_manage_keys_or_write(viewer_client: httpx.AsyncClient) -> None:
    keys = await viewer_client.post("/v1/keys", json={"role": "admin"})
    write = await viewer_client.post("/v1/devices", json=[])
    assert (keys.status_code, write.status_code) == (403, 403)


async def invoke(database_url: DatabaseUrl, *args: str) -> Result:
    """Run the CLI in a thread: it starts its own event loop, as it does from a shell."""
    env = {"CITYTEL_DATABASE_URL": str(database_url)}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def test_keys_cli_creates_lists_and_revokes(
    database_url: DatabaseUrl, db: asyncpg.Connection, client_for: ClientFactory
) -> None:
    created = await invoke(database_url, "keys", "create", "--role", "operator", "--name", "ops")
    assert created.exit_code == 0, created.output
    lines = created.stdout.splitlines()
    full = next(line for line in lines if line.startswith("ctk_"))
    assert "will not be shown again" in created.stdout
    key = parse_key(full)
    assert key is not None
    assert (await client_for(full).post("/v1/devices", json=[])).status_code == 200

    listed = await invoke(database_url, "keys", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if line.startswith(key.key_id))
    assert "operator" in row and "ops" in row
    assert key.secret not in listed.stdout

    revoked = await invoke(database_url, "keys", "revoke", key.key_id)
    assert (revoked.exit_code, revoked.stdout.strip()) == (0, f"revoked key {key.key_id}")
    assert (await client_for(full).get("/v1/devices")).status_code == 401
    again = await invoke(database_url, "keys", "revoke", key.key_id)
    assert again.exit_code == 1 and "already revoked" in again.stderr


async def test_keys_cli_refuses_a_bad_role_or_name(database_url: DatabaseUrl) -> None:
    role = await invoke(database_url, "keys", "create", "--role", "root")
    name = await invoke(database_url, "keys", "create", "--role", "viewer", "--name", "x" * 201)
    assert (role.exit_code, name.exit_code) == (2, 2)
