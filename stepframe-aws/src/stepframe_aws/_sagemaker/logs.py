"""A training job's CloudWatch log lines, read on from where the last poll stopped.

SageMaker writes one stream per instance, ``JOB_NAME/algo-N-TIMESTAMP``, in the group
``/aws/sagemaker/TrainingJobs``; they appear only once the instances start.  Where each
stream was read up to is its ``nextForwardToken``, kept in the poll cursor.
"""

from __future__ import annotations

from typing import Any

import attrs

from stepframe_aws._errors import error_code, transient_problem

__all__ = ["LOG_GROUP", "LogBatch", "read_new_lines"]

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# GetLogEvents pages per stream and poll: enough to keep up with a chatty job without
# making one poll slow; the final poll drains further.
PAGES_PER_POLL = 4
PAGES_WHEN_DRAINING = 40


# Codes that mean the identity may not read the logs: asking again will not help.
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


@attrs.frozen
class LogBatch:
    """New lines, the tokens to continue from, why logs stopped for good (``problem``),
    and why this poll read no further (``skipped``: the next poll reads on)."""

    lines: tuple[str, ...]
    tokens: dict[str, str]
    problem: str | None = None
    skipped: str | None = None


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
    :return: never raises for an answer from CloudWatch Logs, nor for throttling or a
        connection problem: the job's state matters more than its logs.  A denied
        permission comes back as ``problem`` (logs stop for good), anything else as
        ``skipped`` (the tokens stay where they were, the next poll reads on).
    """
    tokens = dict(tokens)
    try:
        answer = client.describe_log_streams(
            logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/", limit=50
        )
    except Exception as error:
        if error_code(error) == "ResourceNotFoundException":
            return LogBatch((), tokens)  # no instance has started yet
        return _interrupted(error, (), tokens)
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
            except Exception as error:
                return _interrupted(error, tuple(lines), tokens)
            tokens[stream] = page.get("nextForwardToken", tokens.get(stream, ""))
            events = page.get("events", [])
            for event in events:
                text = str(event.get("message", "")).rstrip("\n")
                lines.append(f"[{_host(stream)}] {text}" if several else text)
            if not events:
                break
    return LogBatch(tuple(lines), tokens)


def _interrupted(error: Exception, lines: tuple[str, ...], tokens: dict[str, str]) -> LogBatch:
    """The batch so far, with why it ends here; re-raises what is not AWS's answer or
    a connection problem (a bug here, not a reason to stop reading logs)."""
    code = error_code(error)
    if code in _DENIED:
        return LogBatch(
            lines,
            tokens,
            problem=(
                f"cannot read the job's CloudWatch logs ({code}); the client needs "
                "logs:DescribeLogStreams and logs:GetLogEvents on "
                f"{LOG_GROUP}; the job's state is still followed"
            ),
        )
    problem = transient_problem(error)
    if problem == "throttling":
        why = "CloudWatch Logs is throttling"
    elif problem is not None:
        why = "CloudWatch Logs cannot be reached"
    elif code:
        why = f"CloudWatch Logs answered {code}"
    else:
        raise error
    return LogBatch(lines, tokens, skipped=f"{why}; the job's log lines follow when it answers")
