import sys

from worker.entrypoint import main

sys.exit(main())
