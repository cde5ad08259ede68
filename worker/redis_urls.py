"""Redis URLs made safe to use and to print.

`verified_tls`: kombu connects to a bare `rediss://` URL WITHOUT checking the server's
certificate (it logs a warning and uses CERT_NONE), while redis-py checks it. So that the
broker and the state client agree, and agree on the safe side, a `rediss://` URL without
`ssl_cert_reqs` gets `ssl_cert_reqs=required`; the CA is given in the same query
(`ssl_ca_certs=/path/ca.pem`), which both libraries read. `ssl_cert_reqs=none` must be
written out to turn checking off.

`redacted`: the URL with its password replaced, for printing.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TLS_SCHEME = "rediss"


def verified_tls(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != TLS_SCHEME:
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "ssl_cert_reqs" for key, _ in query):
        return url
    query.append(("ssl_cert_reqs", "required"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
