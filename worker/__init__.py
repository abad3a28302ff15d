"""The worker that runs on each machine: `python -m worker` (see worker/entrypoint.py)."""
