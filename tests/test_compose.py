"""The production compose stack, checked statically (no Docker engine runs in tests).

The compose file is parsed with PyYAML; every path it names must exist in the repo,
every ``CITYTEL_`` variable must be a real setting, images must be pinned and
secrets must come from ``.env`` rather than sit in the file.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.broker import AT_LEAST_ONCE_SETTINGS
from core.settings import IngestSettings, all_env_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"

SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)
VAR_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(?::?[-?][^}]*)?\}$")
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]+:([^@\s]+)@")
PINNED_TAG = re.compile(r"^\d+\.\d+\.\d+(?:[-.][A-Za-z0-9.-]+)?$")
CITYTEL_VAR = re.compile(r"\bCITYTEL_[A-Z0-9_]+\b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from compose["services"].items()


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _host_path(source: str) -> Path | None:
    """The repo path of a bind mount source; ``None`` for a named volume."""
    if source.startswith(("./", "../", "/")):
        return (ROOT / source).resolve()
    return None


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def test_compose_bind_mounts_and_configs_exist(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    for name, service in services(compose):
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            path = _host_path(source)
            if path is None:
                assert source in named, f"{name}: volume {source!r} is not declared"
            else:
                assert path.exists(), f"{name}: mounted {source} does not exist"
                assert path.is_relative_to(ROOT), f"{name}: {source} is outside the repo"
    for section in ("configs", "secrets"):
        for key, item in (compose.get(section) or {}).items():
            if "file" in item:
                assert (ROOT / item["file"]).exists(), f"{section}.{key}: {item['file']} missing"


def test_compose_build_context_and_dockerfile_exist(compose: dict[str, Any]) -> None:
    built = [(n, s["build"]) for n, s in services(compose) if "build" in s]
    assert built, "no service builds the app image"
    for name, raw in built:
        build = {"context": raw} if isinstance(raw, str) else raw
        context = ROOT / build.get("context", ".")
        assert context.is_dir(), f"{name}: build context missing"
        assert (context / build.get("dockerfile", "Dockerfile")).is_file()
        assert (context / "pyproject.toml").is_file(), "the Dockerfile runs `pip install`"


def test_compose_image_build_has_the_files_pip_needs() -> None:
    """`pip install .` in the Dockerfile fails when pyproject names a missing readme."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    readme = project["project"].get("readme")
    if isinstance(readme, str):
        assert (ROOT / readme).is_file(), f"pyproject readme {readme} missing"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for needed in ("pyproject.toml", "citytel", "schemas", "dashboards", readme):
        assert needed not in ignored, f".dockerignore excludes {needed}"


def test_compose_env_files_exist_or_are_the_ignored_dot_env(compose: dict[str, Any]) -> None:
    for name, service in services(compose):
        env_files = service.get("env_file") or []
        for item in [env_files] if isinstance(env_files, str | dict) else env_files:
            path = item["path"] if isinstance(item, dict) else item
            if Path(path).name == ".env":
                continue  # checked below: ignored by git, example committed
            assert (ROOT / path).exists(), f"{name}: env_file {path} missing"
    assert ENV_EXAMPLE.is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False
    ).returncode
    assert ignored == 0, ".env must be listed in .gitignore"
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_compose_citytel_variables_are_real_settings(compose: dict[str, Any]) -> None:
    known = all_env_names()
    used = set(CITYTEL_VAR.findall(COMPOSE.read_text(encoding="utf-8")))
    used |= set(CITYTEL_VAR.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))
    assert used, "no CITYTEL_ variable found; is the parser broken?"
    assert used - known == set(), f"not settings: {sorted(used - known)}"


def test_compose_env_example_covers_every_required_variable() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):?\?", text))
    example = _env_example()
    assert required <= set(example), f"missing in .env.example: {required - set(example)}"
    for key, value in example.items():
        if SECRET_KEY.search(key):
            assert value == "changeme", f".env.example: {key} must be a placeholder"


def _image_tags(compose: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name, service in services(compose):
        if "image" in service:
            yield name, service["image"]
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.upper().startswith("FROM "):
            yield "Dockerfile", line.split()[1]


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    tags = list(_image_tags(compose))
    assert len(tags) >= 5
    for where, image in tags:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{where}: {image} has no tag"
        assert tag != "latest", f"{where}: {image} uses latest"
        assert PINNED_TAG.match(tag), f"{where}: {image} is not pinned to X.Y.Z"


def test_compose_secrets_are_not_inlined(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in services(compose):
        for key, value in _environment(service).items():
            if SECRET_KEY.search(key):
                assert VAR_REF.match(value), f"{name}: {key} must be a ${{VAR}} reference"
                checked += 1
            url = URL_PASSWORD.match(value)
            if url:
                assert VAR_REF.match(url.group(1)), f"{name}: {key} has an inline password"
                checked += 1
    assert checked >= 5
    # Nothing else in the file (commands, health checks) carries a literal URL password.
    for text in _strings(compose):
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
            assert match.group(1).startswith("${"), f"inline URL password in {text!r}"


def test_compose_collector_runs_two_replicas_sharing_one_subscription(
    compose: dict[str, Any],
) -> None:
    collectors = {n: s for n, s in compose["services"].items() if n.startswith("collector")}
    assert len(collectors) == 2
    envs = [_environment(c) for c in collectors.values()]
    client_ids = {env["CITYTEL_INGEST_CLIENT_ID"] for env in envs}
    assert len(client_ids) == 2, "each collector needs its own stable client id"
    assert {env["CITYTEL_INGEST_GROUP"] for env in envs} == {"collectors"}
    for env in envs:
        assert env["CITYTEL_INGEST_METRICS_HOST"] == "0.0.0.0"


def test_compose_services_wait_for_migration_and_health(compose: dict[str, Any]) -> None:
    svc = compose["services"]
    for name in ("collector-1", "collector-2", "api"):
        assert svc[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert svc["migrate"]["command"] == ["db", "migrate"]
    assert svc["collector-1"]["command"] == svc["collector-2"]["command"] == ["collect"]
    assert svc["api"]["command"] == ["api"]
    assert _environment(svc["api"])["CITYTEL_API_HOST"] == "0.0.0.0"
    assert svc["simulator"]["profiles"] == ["sim"]
    assert "pg_isready" in str(svc["timescaledb"]["healthcheck"]["test"])
    assert svc["timescaledb"]["image"].endswith("-pg17")
    for name in ("timescaledb", "mosquitto", "grafana"):
        assert "healthcheck" in svc[name], f"{name}: no health check"


def _mosquitto_options() -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for raw in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            options.setdefault(key, []).append(value.strip())
    return options


def test_mosquitto_config_requires_authentication_and_at_least_once() -> None:
    options = _mosquitto_options()
    assert options["allow_anonymous"] == ["false"]
    assert options["password_file"] and options["acl_file"]
    for line in AT_LEAST_ONCE_SETTINGS.splitlines():
        key, _, value = line.partition(" ")
        assert options.get(key) == [value], f"mosquitto.conf: {key} must be {value}"
    assert int(options["max_queued_messages"][0]) >= 10_000_000
    assert options["persistence"] == ["true"]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of each volume of ``service``."""
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def test_mosquitto_config_files_are_where_compose_mounts_them(compose: dict[str, Any]) -> None:
    options = _mosquitto_options()
    mounts = _mounts(compose["services"]["mosquitto"])
    # Password file and ACL: written by mqtt-passwd into the volume the broker reads.
    for key in ("password_file", "acl_file"):
        assert mounts[str(Path(options[key][0]).parent)] == "mosquitto-auth", key
    assert mounts[options["persistence_location"][0].rstrip("/")] == "mosquitto-data"
    passwd_service = compose["services"]["mqtt-passwd"]
    passwd_mounts = _mounts(passwd_service)
    assert passwd_mounts["/mosquitto/auth"] == "mosquitto-auth"
    env = _environment(passwd_service)
    assert env["MQTT_PASSWD_FILE"] == options["password_file"][0]
    assert env["MQTT_ACL_FILE"] == options["acl_file"][0]
    assert (ROOT / passwd_mounts[env["MQTT_DEFAULT_ACL"]]).is_file()
    assert passwd_mounts[env["MQTT_FLEET_DIR"]] == "./deploy/fleet"
    assert compose["services"]["mosquitto"]["depends_on"]["mqtt-passwd"]["condition"] == (
        "service_completed_successfully"
    )


def test_mosquitto_serves_tls_on_8883_with_certificates_kept_out_of_git_and_images(
    compose: dict[str, Any],
) -> None:
    options = _mosquitto_options()
    assert "8883 0.0.0.0" in options["listener"] and "1883 0.0.0.0" in options["listener"]
    assert "8883:8883" in compose["services"]["mosquitto"]["ports"]
    mounts = _mounts(compose["services"]["mosquitto"])
    for key in ("certfile", "keyfile"):
        folder = str(Path(options[key][0]).parent)
        source = mounts[folder]
        assert (ROOT / source).is_dir(), f"{key}: {source} is not a folder of the repo"
    # Secrets live in git-ignored folders, and never in the app image (COPY . in the
    # Dockerfile would put them into a layer for good).
    ignored_by_docker = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for secret in ("deploy/fleet/devices.csv", "deploy/mosquitto/certs/server.key"):
        ignored = subprocess.run(["git", "check-ignore", "-q", secret], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{secret} is not ignored by git"
        assert str(Path(secret).parent) in ignored_by_docker, f"{secret} goes into the image"


def test_mosquitto_refuses_packets_larger_than_the_collector_takes() -> None:
    """The broker's limit sits just above the collector's payload limit: a payload the
    collector would keep only as a ``too_large`` dead letter may still arrive, but nothing
    that would make each held message cost more than that reaches it."""
    limit = int(_mosquitto_options()["max_packet_size"][0])
    payload = IngestSettings.model_fields["ingest_max_payload_bytes"].default
    assert payload + 1024 <= limit <= payload + 8192
