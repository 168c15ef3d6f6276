"""The benchmark items, one module each (see bench/runner.py for the list)."""
