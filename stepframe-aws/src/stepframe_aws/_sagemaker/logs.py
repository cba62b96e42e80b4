"""A training job's CloudWatch log lines, read on from where the last poll stopped.

SageMaker writes one stream per instance, ``JOB_NAME/algo-N-TIMESTAMP``, in the group
``/aws/sagemaker/TrainingJobs``; they appear only once the instances start.  Where each
stream was read up to is its ``nextForwardToken``, kept in the poll cursor.
"""

from __future__ import annotations

from typing import Any

import attrs

from stepframe_aws._errors import error_code

__all__ = ["LOG_GROUP", "LogBatch", "read_new_lines"]

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# GetLogEvents pages per stream and poll: enough to keep up with a chatty job without
# making one poll slow; the final poll drains further.
PAGES_PER_POLL = 4
PAGES_WHEN_DRAINING = 40


@attrs.frozen
class LogBatch:
    """New lines, the tokens to continue from, and why logs stopped, if they did."""

    lines: tuple[str, ...]
    tokens: dict[str, str]
    problem: str | None = None


def _host(stream: str) -> str:
    """``algo-2`` from ``JOB/algo-2-1700000000``: which instance wrote a line."""
    name = stream.split("/", 1)[-1]
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() else name


def read_new_lines(
    client: Any, job_name: str, tokens: dict[str, str], *, drain: bool = False
) -> LogBatch:
    """Lines the job's streams got since ``tokens``.

    :param client: a CloudWatch Logs client.
    :param job_name: the training job's name (its streams' prefix).
    :param tokens: stream name to the ``nextForwardToken`` read up to.
    :param drain: read every page left (the job ended, this is the last chance).
    :return: never raises for a missing group or a denied permission: the job's state
        matters more than its logs, so those come back as ``problem``.
    """
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

    tokens = dict(tokens)
    try:
        answer = client.describe_log_streams(
            logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/", limit=50
        )
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return LogBatch((), tokens)  # no instance has started yet
        return LogBatch((), tokens, _problem(error))
    streams = sorted(stream["logStreamName"] for stream in answer.get("logStreams", []))
    several = len(streams) > 1
    lines: list[str] = []
    for stream in streams:
        for _ in range(PAGES_WHEN_DRAINING if drain else PAGES_PER_POLL):
            request: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if stream in tokens:
                request["nextToken"] = tokens[stream]
            try:
                page = client.get_log_events(**request)
            except ClientError as error:
                return LogBatch(tuple(lines), tokens, _problem(error))
            tokens[stream] = page.get("nextForwardToken", tokens.get(stream, ""))
            events = page.get("events", [])
            for event in events:
                text = str(event.get("message", "")).rstrip("\n")
                lines.append(f"[{_host(stream)}] {text}" if several else text)
            if not events:
                break
    return LogBatch(tuple(lines), tokens)


def _problem(error: BaseException) -> str:
    code = error_code(error) or type(error).__name__
    return (
        f"cannot read the job's CloudWatch logs ({code}); the client needs "
        "logs:DescribeLogStreams and logs:GetLogEvents on "
        f"{LOG_GROUP}; the job's state is still followed"
    )
