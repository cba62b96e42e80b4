"""Helpers the stepframe-aws tests share: moto's own API, its IAM, its SageMaker backend,
answers injected through botocore's event hooks, and a fake clock.

Imported by name (``from _moto_helpers import ...``); conftest.py puts this folder on
``sys.path``, which pytest's ``--import-mode=importlib`` does not do.  The fixtures that
use these (``recording``, ``moto_iam``, ``instant_retries``) are in conftest.py.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

ACCOUNT = "123456789012"
REGION = "us-east-1"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


# ---- moto's own API ----------------------------------------------------------------------


def moto_api(endpoint: str, path: str, method: str = "GET", data: bytes | None = None) -> bytes:
    """A request to moto's server itself (``/moto-api/...``), past the dead proxy."""
    request = urllib.request.Request(
        f"{endpoint}{path}",
        data=data,
        method=method,
        # Not a form: moto reads some bodies raw (reset-auth's count).
        headers={"Content-Type": "text/plain"} if data is not None else {},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request) as answer:
        return bytes(answer.read())


class Recording:
    """moto's request recorder: every request the server got while it ran."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def requests(self, target: str) -> list[dict[str, Any]]:
        """JSON bodies of the requests whose ``X-Amz-Target`` ends in ``target``."""
        found = []
        for line in moto_api(self.endpoint, "/moto-api/recorder/download-recording").splitlines():
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in entry["headers"].items()}
            if not headers.get("x-amz-target", "").endswith(f".{target}"):
                continue
            body = entry["body"]
            raw = base64.b64decode(body) if entry["body_encoded"] else body.encode()
            found.append(json.loads(raw))
        return found


class MotoIam:
    """Users, keys and roles in moto's IAM, made before `enforce` turns its checks on."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.iam = boto3.client("iam")
        self.enforcing = False

    def user(self, name: str, policy: dict[str, Any] | None = None) -> tuple[str, str, str]:
        """A user with an access key: ``(arn, key id, secret key)``."""
        arn = self.iam.create_user(UserName=name)["User"]["Arn"]
        self.iam.put_user_policy(
            UserName=name, PolicyName="main", PolicyDocument=json.dumps(policy or ALLOW_ALL)
        )
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return arn, key["AccessKeyId"], key["SecretAccessKey"]

    def role(self, name: str, trusted: str, external_id: str | None = None) -> str:
        """A role ``trusted`` may assume (with ``external_id``, when given)."""
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": trusted},
            "Action": "sts:AssumeRole",
        }
        if external_id is not None:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        trust = {"Version": "2012-10-17", "Statement": [statement]}
        arn = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
        self.iam.put_role_policy(
            RoleName=name, PolicyName="main", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        return str(arn)

    def enforce(self, on: bool = True) -> None:
        """moto checks every request's key, signature and permissions from now on."""
        moto_api(self.endpoint, "/moto-api/reset-auth", "POST", b"0" if on else b"inf")
        self.enforcing = on


# ---- moto's SageMaker and CloudWatch Logs ------------------------------------------------


def sagemaker_backend() -> Any:
    """moto's in-process SageMaker backend, to move training jobs through their states."""
    from moto.backends import get_backend

    return get_backend("sagemaker")[ACCOUNT][REGION]


def write_logs(stream: str, *messages: str) -> None:
    """Lines in a training job's CloudWatch log stream, as the job would write them."""
    import boto3

    logs = boto3.client("logs", region_name=REGION)
    try:
        logs.create_log_group(logGroupName=LOG_GROUP)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    try:
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": text} for i, text in enumerate(messages)],
    )


def teach_stop_training_job(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Teach moto's SageMaker StopTrainingJob (it answers 500, not implemented): the job
    goes to Stopped, and a job that has ended is refused the way SageMaker refuses it.

    :return: the names of the jobs stopped, in order.
    """
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    stopped: list[str] = []

    def stop_training_job(self: Any) -> Any:
        name = self._get_param("TrainingJobName")
        job = self.sagemaker_backend.training_jobs[name]
        if job.training_job_status in ("Completed", "Failed", "Stopped"):
            raise ValidationError(
                f"The request was rejected because the training job is in status "
                f"{job.training_job_status}."
            )
        job.training_job_status = "Stopped"
        job.secondary_status = "Stopped"
        stopped.append(name)
        return EmptyResult()

    monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)
    return stopped


def ecr_logins_last(seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's ECR logins expire ``seconds`` from now, as ECR's do (12 hours), instead of
    on the fixed 2015-01-01 moto gives them all."""
    import datetime

    import moto.ecr.responses

    def issued(*args: Any, **kwargs: Any) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(time.time() + seconds, datetime.timezone.utc)

    monkeypatch.setattr(moto.ecr.responses, "datetime", issued)


# ---- answers through botocore's event hooks ----------------------------------------------


class RawBody:
    """The raw body an ``AWSResponse`` reads its content from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.data


def aws_answer(url: str, status: int, body: bytes, content_type: str | None = None) -> Any:
    """An HTTP answer for a ``before-send`` hook to return instead of sending."""
    from botocore.awsrequest import AWSResponse

    headers = {"Content-Type": content_type} if content_type else {}
    return AWSResponse(url, status, headers, RawBody(body))


def throttle_first(client: Any, operation: str, times: int) -> list[str]:
    """Make ``operation`` answer ThrottlingException ``times`` times, through botocore's
    event hooks: the retries that follow are botocore's own.

    :return: what each attempt met, ``"throttled"`` or ``"sent"``, as it happens.
    """
    seen: list[str] = []

    def answer(request: Any, **kwargs: Any) -> Any:
        seen.append("throttled" if len(seen) < times else "sent")
        if seen[-1] == "sent":
            return None
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
        return aws_answer(request.url, 400, body.encode(), "application/x-amz-json-1.1")

    client.meta.events.register(
        f"before-send.{client.meta.service_model.service_name}.{operation}", answer
    )
    return seen


_EXPIRED = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    b"<Type>Sender</Type><Code>ExpiredToken</Code>"
    b"<Message>The security token included in the request is expired</Message>"
    b"</Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
)


def expire_sts_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every STS call in this process answers 403 ExpiredToken, as AWS does for an
    expired session (moto never expires a token).

    botocore's own factory is wrapped, so every session boto3 or stepframe makes has the
    handler; botocore parses the answer and raises exactly as it would for AWS's.
    """
    import botocore.session

    make = botocore.session.get_session

    def answer(request: Any, **_: Any) -> Any:
        return aws_answer(request.url, 403, _EXPIRED, "text/xml")

    def get_session(*args: Any, **kwargs: Any) -> Any:
        session = make(*args, **kwargs)
        session.register("before-send.sts.*", answer)
        return session

    monkeypatch.setattr(botocore.session, "get_session", get_session)


# ---- time ---------------------------------------------------------------------------------


class FakeClock:
    """UNIX time that moves only when the test says so.

    :param now: where it starts; the real time by default.
    """

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sts_follows(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's STS (its server runs in this process) dates its sessions by ``clock``, so a
    session issued after the clock jumped expires after the jump, as on AWS."""
    import datetime

    import moto.sts.models

    monkeypatch.setattr(
        moto.sts.models,
        "utcnow",
        lambda: datetime.datetime.fromtimestamp(clock(), datetime.timezone.utc).replace(
            tzinfo=None
        ),
    )
