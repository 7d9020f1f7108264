"""`chalice local`, unchanged but for the listen backlog.

socketserver's default backlog is 5: fifty clients connecting at once (the
concurrency tests, the progress benchmark, a busy page) would see connection
resets from the dev server rather than answers from the app.
Usage: python -m devstack.chalice_local local --port 8000 --stage local
"""
import sys

from chalice import local
from chalice.cli import main

local.ThreadedHTTPServer.request_queue_size = 256
local.ThreadedHTTPServer.daemon_threads = True

if __name__ == "__main__":
    sys.argv[0] = "chalice"
    sys.exit(main())
