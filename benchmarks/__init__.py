"""Fan-out benchmark of roomcast against the bare limit and python-socketio.

Not part of the test suite. Run with ``python -m benchmarks.run``; see
``docs/topics/benchmark.md`` for the method and the flags.
"""
