"""The ``sagemaker`` step operator: one SageMaker training job per step attempt."""
