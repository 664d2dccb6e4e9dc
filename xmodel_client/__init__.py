"""Python client of the xmodel annotation service, and the ``xmodel`` command line.

from xmodel_client import XModelClient
admin = XModelClient("http://127.0.0.1:8000", token=ADMIN_TOKEN)
project = admin.create_project("pets", {"kind": "classification", "classes": ["cat", "dog"]})
owner = admin.with_token(project.owner_token)
"""

from xmodel_client.client import FileOutcome, XModelClient
from xmodel_client.errors import ApiError, NotFound, TransportError, XModelError
from xmodel_client.sources import UploadSource, collect

__all__ = [
    "ApiError",
    "FileOutcome",
    "NotFound",
    "TransportError",
    "UploadSource",
    "XModelClient",
    "XModelError",
    "collect",
]
