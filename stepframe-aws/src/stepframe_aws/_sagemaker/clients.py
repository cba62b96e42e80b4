"""boto3 clients of the ``sagemaker`` operator, made once per credentials, region and use.

A run polls every job every few seconds for hours; making a client costs tens of
milliseconds and a fresh connection pool each time, so clients are kept.  Each *use* has
its own retry policy: polling retries throttling and 5xx answers patiently, stopping a
job retries once (Ctrl-C must not hang for a minute on an endpoint that answers 500).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

from stepframe_aws._session import client as make_client

if TYPE_CHECKING:
    from stepframe import Credentials

__all__ = ["RETRIES", "Use", "cached_client", "clear_clients"]

Use = Literal["submit", "poll", "logs", "stop"]

# botocore's "standard" retry mode: exponential backoff with jitter on throttling,
# 5xx and connection errors.  These are total attempts, the first try included
# (botocore's ``total_max_attempts``; its ``max_attempts`` would count retries only).
RETRIES: dict[str, int] = {
    # CreateTrainingJob: jobs._create retries it itself, remembering a try whose answer
    # was lost (botocore's retries would hide it behind the last try's error).
    "submit": 1,
    # A poll that gives up makes the run fail; throttling is the usual cause, so wait.
    "poll": 6,
    "logs": 4,
    # One retry: a cancel that cannot get through should say so within seconds.
    "stop": 2,
}
_SERVICES: dict[str, str] = {"submit": "sagemaker", "poll": "sagemaker", "stop": "sagemaker"}
_MAX_CLIENTS = 16

_lock = threading.Lock()
_clients: OrderedDict[tuple[str, ...], Any] = OrderedDict()


def _credentials_key(credentials: Credentials | None) -> str:
    """Tells credentials apart without keeping their secret material in the key."""
    if credentials is None:
        return "default-chain"
    digest = hashlib.sha256()
    for name, value in sorted(credentials.values.items()):
        digest.update(f"{name}\0{value}\0".encode())
    return f"{credentials.connector}:{digest.hexdigest()}"


def cached_client(use: Use, credentials: Credentials | None, region: str | None) -> Any:
    """The client for one use (``submit``, ``poll``, ``logs``, ``stop``).

    :param use: what the client is for; it picks the service and the retry policy.
    :param credentials: from the operator's connector, or None for boto3's default chain.
    :param region: the region; None for the connector's or the environment's.
    """
    key = (use, region or "", _credentials_key(credentials))
    with _lock:
        found = _clients.get(key)
        if found is not None:
            _clients.move_to_end(key)
            return found
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": RETRIES[use]})
    made = make_client(_SERVICES.get(use, "logs"), credentials, region=region, config=config)
    with _lock:
        # Another thread may have made one meanwhile; keep the first so that event
        # hooks registered on it stay in force.
        found = _clients.setdefault(key, made)
        _clients.move_to_end(key)
        while len(_clients) > _MAX_CLIENTS:
            _clients.popitem(last=False)
    return found


def clear_clients() -> None:
    """Forget every kept client (tests that change endpoints or keys)."""
    with _lock:
        _clients.clear()
