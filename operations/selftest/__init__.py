"""`cli.py selftest`: the user's account proved with a throwaway run before the first real one (run.py says how)."""
