"""The run report (`cli.py report`, `cli.py local --report`): data.py reads the job logs into attempts,
figures.py computes what the page shows, render.py draws it, sources.py gathers the inputs and writes the file."""
