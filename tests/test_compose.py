"""compose.yaml and the Dockerfile agree with docs/operations.md (Docker cannot run here,
so this reads them; `docker-compose config` is also run when that binary exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ("worker", "beat", "flower")
# The restricted ACL user, its password required from the environment (no default).
REDIS_URL = (
    "redis://aftersales:${AFTERSALES_REDIS_PASSWORD:?set AFTERSALES_REDIS_PASSWORD}@redis:6379/0"
)
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else list(command)


def healthcheck_of(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_services_are_redis_worker_one_beat_and_flower(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", *APP_SERVICES}
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_redis_7_keeps_an_append_only_file_and_reports_health(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert re.match(r"^redis:7([.-]|$)", redis["image"])
    command = command_of(redis)
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "redis-cli --user aftersales ping" in healthcheck_of(redis)


def test_redis_loads_the_acl_users_with_required_passwords(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert command_of(redis)[:2] == ["sh", "/etc/aftersales/redis-start.sh"]
    assert "./deploy:/etc/aftersales:ro" in redis["volumes"]
    for name in ("REDIS_ADMIN_PASSWORD", "AFTERSALES_REDIS_PASSWORD"):
        match = REQUIRED.match(redis["environment"][name])
        assert match and match["name"] == name, f"{name} must be required, with no default"
    assert redis.get("user") == "redis"
    # The health check authenticates without putting the password on a command line.
    assert "REDISCLI_AUTH=" in healthcheck_of(redis) and " -a " not in healthcheck_of(redis)


def test_flower_needs_basic_auth(
    services: dict[str, Any],
) -> None:
    match = REQUIRED.match(services["flower"]["environment"]["FLOWER_BASIC_AUTH"])
    assert match and match["name"] == "FLOWER_BASIC_AUTH"


def test_every_published_port_is_on_loopback(services: dict[str, Any]) -> None:
    published = [str(port) for service in services.values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published), published


def test_no_secret_has_a_default() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert not re.search(r"\$\{\w*(PASSWORD|AUTH)\w*:?-", text)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("worker", ["celery", "-A", "worker", "worker"]),
        ("beat", ["celery", "-A", "worker", "beat"]),
        ("flower", ["celery", "-A", "worker", "flower"]),
    ],
)
def test_app_services_run_the_contract_commands(
    services: dict[str, Any], name: str, expected: list[str]
) -> None:
    command = command_of(services[name])
    assert command[:4] == expected
    service = services[name]
    assert service["build"] in (".", {"context": "."})
    assert service["environment"]["AFTERSALES_REDIS_URL"] == REDIS_URL
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_worker_sends_task_events_only_when_asked_and_is_pinged(services: dict[str, Any]) -> None:
    assert "-E" not in command_of(services["worker"])  # Flower turns them on (enable_events)
    check = services["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"  # a shell, to expand $HOSTNAME
    assert "celery -A worker inspect ping -d celery@$$HOSTNAME" in healthcheck_of(
        services["worker"]
    )


def test_flower_listens_on_5555_and_is_checked_over_http(services: dict[str, Any]) -> None:
    flower = services["flower"]
    assert "--port=5555" in command_of(flower)
    assert "127.0.0.1:5555:5555" in flower["ports"]
    check = healthcheck_of(flower)
    assert "python" in check and "http://127.0.0.1:5555/" in check


def test_only_documented_settings_are_set(services: dict[str, Any]) -> None:
    known = set(re.findall(r"AFTERSALES_[A-Z_]+", (ROOT / "worker" / "settings.py").read_text()))
    readme = (ROOT / "README.md").read_text()
    security = (ROOT / "docs" / "security.md").read_text()
    for name in APP_SERVICES:
        for variable in services[name]["environment"]:
            if variable.startswith("FLOWER_"):  # Flower's own, documented with the set-up
                assert f"`{variable}`" in security, f"{variable} is not in docs/security.md"
                continue
            assert variable in known, f"{name}: {variable} is not read by worker/settings.py"
            assert f"`{variable}`" in readme, f"{variable} is not documented in the README"


def test_dockerfile_installs_the_package_on_python_3_11_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN pip install ", dockerfile, re.MULTILINE)
    for package in ("schemas", "worker", "tasks"):
        assert re.search(rf"^COPY {package} ", dockerfile, re.MULTILINE), package


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
