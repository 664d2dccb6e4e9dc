"""``python -m xmodel_client`` runs the ``xmodel`` command line."""

import sys

from xmodel_client.cli import main

sys.exit(main())
