"""The ``s3`` artifact store: write-once, sha256-checked objects under an ``s3://`` root."""
