"""Ray job entry point: `ray job submit --working-dir . -- python jobs/colorize.py INPUT OUTPUT -e IMG@F`.

Inside a submitted job RAY_ADDRESS is set, so the job joins that cluster instead of
starting an embedded one. Arguments are those of `filmcolor colorize`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "colorize", *sys.argv[1:]]
    main()
