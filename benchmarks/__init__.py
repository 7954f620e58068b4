"""gdsearch's benchmarks: ``python benchmarks/bench.py --help`` (sections in the modules here)."""
