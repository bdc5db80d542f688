"""filmcolor: exemplar-based colorization of black-and-white films, distributed on Ray Data."""

import logging

__version__ = "0.1.0"

# One named logger for the whole library; the CLI configures its handler.
log = logging.getLogger("filmcolor")
