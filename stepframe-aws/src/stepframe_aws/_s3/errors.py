"""S3 errors that deserve their own message on top of `stepframe_aws._errors.aws_errors`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stepframe import ConfigError
from stepframe_aws._errors import aws_errors, error_code

__all__ = ["missing_bucket", "s3_errors"]


def missing_bucket(bucket: str, doing: str) -> ConfigError:
    """The error for a bucket that does not exist, naming it and the fix."""
    return ConfigError(
        f"{doing}: S3 bucket {bucket!r} does not exist; create it (`aws s3 mb s3://{bucket}`) "
        "or point the artifact store at a bucket that exists "
        "(`stepframe artifact-store update NAME --path s3://BUCKET/PREFIX`)"
    )


@contextmanager
def s3_errors(doing: str, bucket: str) -> Iterator[None]:
    """`aws_errors`, and `missing_bucket` for S3's NoSuchBucket.

    Codes the block handles itself (NoSuchKey, PreconditionFailed) it catches inside.

    :param doing: what the block does, for the message (``"reading s3://b/k"``).
    :param bucket: the bucket the block works in.
    """
    from botocore.exceptions import ClientError

    with aws_errors(doing):
        try:
            yield
        except ClientError as error:
            if error_code(error) == "NoSuchBucket":
                raise missing_bucket(bucket, doing) from None
            raise
