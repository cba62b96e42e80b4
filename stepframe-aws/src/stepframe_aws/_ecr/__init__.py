"""The ``ecr`` container registry: repositories created on demand, logins from the connector."""
