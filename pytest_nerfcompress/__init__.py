"""pytest plugin: benchmarks and quality gates for NeRF compressors (see plugin.py)."""
