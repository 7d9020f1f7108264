"""stocksync's benchmarks: `make bench` (python -m bench.run) runs them on the local stack.

One module per group (write, fetch, e2e, progress, memory); each has a
`run(stack, ...)` that returns a JSON-ready dict and asserts nothing about
time. `bench.run` starts one local stack, runs the groups, prints the table
and writes bench/results.json.
"""
