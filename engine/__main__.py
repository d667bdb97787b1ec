"""`python -m engine` runs the same command line as `originality`."""

from .cli import run

run()
