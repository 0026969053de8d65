"""The benchmark: `make bench` (python -m bench.run). Local tooling, never deployed."""
