"""A small table of SageMaker training prices, shipped so that ``stepframe runs show
--price`` needs no network price look-up.

List prices of SageMaker *training* instances, on demand, in US East (N. Virginia)
(``us-east-1``), in US dollars per instance-hour, as AWS published them in 2024
(aws.amazon.com/sagemaker/pricing, "Training").  They were written down by hand and not
re-checked against the live page: an estimate, not a bill.  Other regions cost more or
less; prices change; savings plans and credits are not known here.  A user's
``--price-table FILE`` wins over any line below.
"""

from __future__ import annotations

__all__ = ["PRICES_DATE", "PRICES_REGION", "TRAINING_PRICES"]

PRICES_REGION = "us-east-1"
PRICES_DATE = "2024"

#: USD per instance-hour of a SageMaker training job, by instance type.
TRAINING_PRICES: dict[str, float] = {
    # General purpose
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.m5.12xlarge": 2.765,
    "ml.m5.24xlarge": 5.53,
    # Compute optimized
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.c5.9xlarge": 1.836,
    "ml.c5.18xlarge": 3.672,
    # GPU: NVIDIA T4
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g4dn.4xlarge": 1.505,
    "ml.g4dn.8xlarge": 2.72,
    "ml.g4dn.12xlarge": 4.89,
    "ml.g4dn.16xlarge": 5.44,
    # GPU: NVIDIA A10G
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.4xlarge": 2.03,
    "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09,
    "ml.g5.16xlarge": 4.096,
    "ml.g5.24xlarge": 10.18,
    "ml.g5.48xlarge": 20.36,
    # GPU: NVIDIA V100, A100
    "ml.p3.2xlarge": 3.825,
    "ml.p3.8xlarge": 14.688,
    "ml.p3.16xlarge": 28.152,
    "ml.p4d.24xlarge": 37.688,
}
