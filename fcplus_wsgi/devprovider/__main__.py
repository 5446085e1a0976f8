"""`python -m fcplus_wsgi.devprovider`: the same command line as `fcplus-wsgi mock-provider`."""

import sys

from .cli import main

sys.exit(main())
