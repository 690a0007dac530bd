"""`python -m dynface.cli ...` is `dynface ...`."""
import sys

from dynface.cli.main import main

sys.exit(main())
