"""Redis URLs: TLS certificates are checked unless the URL says otherwise, and a URL's
password is never printed (worker/redis_urls.py, worker/settings.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from worker.redis_urls import redacted, verified_tls
from worker.settings import Settings


@pytest.mark.parametrize(
    ("url", "cert_reqs"),
    [
        ("rediss://h:6380/0", ["required"]),
        ("rediss://:pw@h:6380/0?ssl_ca_certs=%2Fca.pem", ["required"]),
        ("rediss://h/0?ssl_cert_reqs=none", ["none"]),  # explicitly off stays off
        ("rediss://h/0?ssl_cert_reqs=optional", ["optional"]),
    ],
)
def test_tls_urls_check_certificates_unless_told_otherwise(url: str, cert_reqs: list[str]) -> None:
    query = parse_qs(urlsplit(verified_tls(url)).query)
    assert query["ssl_cert_reqs"] == cert_reqs
    assert query.get("ssl_ca_certs", ["/ca.pem"]) == ["/ca.pem"]


@pytest.mark.parametrize("url", ["redis://h:6379/0", "amqp://u:p@h//", "rediss+sentinel://h"])
def test_other_urls_are_left_alone(url: str) -> None:
    assert verified_tls(url) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        (
            "rediss://aftersales:p%40ss@h/0?ssl_ca_certs=/ca",
            "rediss://aftersales:***@h/0?ssl_ca_certs=/ca",
        ),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_redacted_hides_the_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_settings_apply_the_tls_default_and_never_print_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AFTERSALES_REDIS_URL", "rediss://aftersales:Pwsecret1@127.0.0.1:1/0")
    settings = Settings.from_env()
    assert settings.redis_url.endswith("?ssl_cert_reqs=required")
    assert settings.broker_url == settings.redis_url
    assert "Pwsecret1" not in repr(settings)
