"""The run's store credentials handed to a job process on this machine, and read back."""

from __future__ import annotations

import json
import time

from stepframe import Credentials, ResourceRequest
from stepframe._artifacts.shared import credentials_for_job, job_store_credentials


def test_a_job_gets_fresh_values() -> None:
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

    received = job_store_credentials(credentials_for_job(due))

    assert received == renewed  # refresh is not compared, and cannot travel
    assert received is not None and received.refresh is None
    assert job_store_credentials("") is None


def test_the_values_never_show_in_a_repr() -> None:
    value = credentials_for_job(Credentials("c", ResourceRequest(), {"secret": "hunter2"}))
    received = job_store_credentials(value)
    assert json.loads(value)["values"] == {"secret": "hunter2"}
    assert "hunter2" not in repr(received)
