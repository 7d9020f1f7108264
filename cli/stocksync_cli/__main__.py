"""`python -m stocksync_cli ...`, the same as the `stocksync` command."""
from stocksync_cli.main import run

run()
