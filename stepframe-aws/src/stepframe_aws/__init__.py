"""stepframe-aws: run steps on SageMaker, keep artifacts on S3, push images to ECR.

Installing the distribution is enough: stepframe finds the plugin through its entry point
(``aws = "stepframe_aws.plugin"``).  This module holds what users and tests may import;
everything else is private.  Nothing here imports boto3 or the SageMaker SDK.
"""

from __future__ import annotations

from stepframe_aws._connector.config import AwsConnectorConfig
from stepframe_aws._ecr.config import EcrRegistryConfig
from stepframe_aws._s3.config import S3ArtifactStoreConfig
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings

__version__ = "0.1.0"

__all__ = [
    "AwsConnectorConfig",
    "EcrRegistryConfig",
    "S3ArtifactStoreConfig",
    "SageMakerOperatorConfig",
    "SageMakerSettings",
    "__version__",
]
