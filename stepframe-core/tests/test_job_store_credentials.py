"""The run's store credentials handed to a job process on this machine, and taken back out."""

from __future__ import annotations

import json
import time

from stepframe import Credentials, ResourceRequest
from stepframe._artifacts.shared import (
    STORE_CREDENTIALS_ENV,
    credentials_for_job,
    job_store_credentials,
)


def test_a_job_gets_fresh_values_and_they_leave_its_environment() -> None:
    renewed = Credentials(
        "store-connector",
        ResourceRequest("object_store", "s3://bucket/root"),
        {"key": "new"},
        expires_at=time.time() + 3600,
    )
    due = Credentials(
        "store-connector",
        ResourceRequest("object_store", "s3://bucket/root"),
        {"key": "old"},
        expires_at=time.time() + 10,  # inside the refresh margin
        refresh=lambda: renewed,
    )
    environ = {STORE_CREDENTIALS_ENV: credentials_for_job(due), "OTHER": "1"}

    received = job_store_credentials(environ)

    assert received == renewed  # refresh is not compared, and cannot travel
    assert received is not None and received.refresh is None
    assert environ == {"OTHER": "1"}
    assert job_store_credentials(environ) is None


def test_the_values_never_show_in_a_repr() -> None:
    value = credentials_for_job(Credentials("c", ResourceRequest(), {"secret": "hunter2"}))
    received = job_store_credentials({STORE_CREDENTIALS_ENV: value})
    assert json.loads(value)["values"] == {"secret": "hunter2"}
    assert "hunter2" not in repr(received)
