"""Per-room streams of publications: offsets, epochs, retention, recovery."""
