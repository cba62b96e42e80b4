"""The ``aws`` connector: credentials for boto3, S3 and ECR from one configured identity."""
