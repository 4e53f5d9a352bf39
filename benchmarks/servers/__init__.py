"""Reference servers the benchmark compares roomcast with (each run as its own process)."""
