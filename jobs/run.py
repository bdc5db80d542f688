"""Ray job entry point for a whole collection:
`ray job submit --working-dir . -- python jobs/run.py s3://bucket/manifests/night.yaml [--run-dir URI]`.

Inside a submitted job RAY_ADDRESS is set, so the job joins that cluster instead of
starting an embedded one. Arguments are those of `filmcolor run`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "run", *sys.argv[1:]]
    main()
