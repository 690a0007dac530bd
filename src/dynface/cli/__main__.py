"""`python -m dynface.cli ...` is `dynface ...`."""
import sys

from dynface.cli import main

sys.exit(main())
