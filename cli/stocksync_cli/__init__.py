"""`stocksync`: the command-line client of a stocksync API (local or deployed).

Kept outside chalicelib/ with its own entry point, so it never ships to Lambda, and
built on the standard library only, so `pip install ./cli` works anywhere:

    client.py    the HTTP client: where the API is, the token, one answer shape, errors
    render.py    what a person reads: the progress bar, tables, summaries (zh / en)
    commands.py  the subcommands, each one function registered with @command
    main.py      the parser, the global options and the exit codes
"""

__version__ = "1.0.0"
