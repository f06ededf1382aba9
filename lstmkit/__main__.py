"""``python -m lstmkit ...`` runs the same command line as the ``lstmkit`` script."""
import sys

from lstmkit.cli import main

sys.exit(main())
