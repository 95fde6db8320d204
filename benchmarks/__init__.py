"""facescope benchmarks: speed, memory and mini-benchmark accuracy against the peers (see README.md)."""
