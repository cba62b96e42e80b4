"""Configuration of the ``azure-blob`` artifact store (attrs only: no azure module at plugin
load).

The store is named by its root alone, ``az://ACCOUNT/CONTAINER/PREFIX``, because that is
all the core hands ``open_artifact_store`` -- on the client and inside a job, which opens
the store from its launch manifest's URI and never sees this config.  So what else a store
needs travels the way Azure's own tools carry it, and reaches jobs the same way:

- **Another endpoint** (Azurite, a sovereign cloud, a private endpoint): the account's
  ``BlobEndpoint`` in a storage connection string, from the store's connector or from
  ``AZURE_STORAGE_CONNECTION_STRING`` (the variable the Azure CLI reads), e.g. for
  Azurite ``UseDevelopmentStorage=true`` or
  ``DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=...;
  BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1``.  Without one the endpoint is
  ``https://ACCOUNT.blob.core.windows.net``.
- **Credentials**: the connector's (a Microsoft Entra token for Storage, or an account
  key, SAS or connection string), else the connection string's key or SAS, else
  azure-identity's default chain (a job's managed identity).
"""

from __future__ import annotations

import attrs

__all__ = ["FLAVOR", "URI_SCHEMES", "AzureBlobStoreConfig"]

FLAVOR = "azure-blob"
# ``https`` is every web address's scheme: claiming it would route any https:// store
# URI to this plugin.  The portal's https form is accepted in the config and turned into
# the az:// one (see `AzureBlobStoreConfig.path`).
URI_SCHEMES = ("az",)


def _az_uri(value: str) -> str:
    """``az://ACCOUNT/CONTAINER/PREFIX``, from that or the portal's https:// form; the
    error (one line naming the rule) is reported with the setting's path."""
    from stepframe_azure._blob.uri import parse_blob_uri

    return parse_blob_uri(str(value)).uri


@attrs.frozen
class AzureBlobStoreConfig:
    """Where an ``azure-blob`` artifact store keeps artifacts.

    :param path: the store's root, ``az://ACCOUNT/CONTAINER[/PREFIX]`` or
        ``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]`` (kept in the az://
        form).  The container must exist; the store writes a marker blob at the root.
    """

    path: str = attrs.field(converter=_az_uri)
