"""Side-by-side measurements of edgekit against the raw tools (run: python -m benchmarks)."""
