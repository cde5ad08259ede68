"""A label store on S3 or a compatible object store (AWS S3, MinIO, Ceph, R2...).

A sketch of the `LabelStore` protocol of `worker/adapters/label_store.py` (docs/labels.md):
build it where the worker builds its label store, instead of the local-disk one, and the
events carry `s3://` URIs. It needs `boto3` only when it is used without a client of your
own (`pip install boto3`); the test suite type-checks it against the protocol and runs it
on an in-memory client.

An object PUT is already all-or-nothing, so no temp-file dance is needed. If consumers are
outside the cloud account, make `uri` return a presigned HTTPS URL
(`generate_presigned_url("get_object", ...)`) with an expiry at least as long as the
label's validity.
"""

from __future__ import annotations

import importlib
from typing import Any

from worker.adapters.label_store import LabelStore, check_name

CONTENT_TYPES = {".pdf": "application/pdf", ".png": "image/png", ".svg": "image/svg+xml"}

MISSING = ("NoSuchKey", "404", "NotFound")
"""Error codes S3 and its look-alikes answer for an absent object (GET says NoSuchKey,
HEAD has no body and says 404; MinIO and others vary)."""


def _error_code(exc: Exception) -> str | None:
    """The S3 error code of a botocore ClientError (`exc.response["Error"]["Code"]`)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


class S3LabelStore:
    """Label files as objects `prefix + name` in `bucket`."""

    def __init__(
        self, bucket: str, prefix: str = "labels/", client: Any = None, **client_options: Any
    ) -> None:
        # boto3 is imported only here, so that this module loads without it.
        self.s3 = client or importlib.import_module("boto3").client("s3", **client_options)
        self.bucket, self.prefix = bucket, prefix

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def put(self, name: str, data: bytes) -> str:
        content_type = CONTENT_TYPES.get(name[name.rfind(".") :], "application/octet-stream")
        self.s3.put_object(
            Bucket=self.bucket, Key=self._key(name), Body=data, ContentType=content_type
        )
        return self.uri(name)

    def get(self, name: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except Exception as exc:
            if _error_code(exc) in MISSING:
                return None
            raise  # throttling, network: the label task retries like any label failure
        return body

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def exists(self, name: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            if _error_code(exc) in MISSING:
                return False
            raise
        return True


def _conforms(store: S3LabelStore) -> LabelStore:
    return store  # mypy checks here that S3LabelStore implements the protocol


if __name__ == "__main__":  # a smoke run against a real bucket: BUCKET=... python this.py
    import os

    store = S3LabelStore(os.environ["BUCKET"])
    print(store.put("smoke-test.pdf", b"%PDF-1.4\n"), store.exists("smoke-test.pdf"))
