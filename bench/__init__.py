"""Benchmarks: `make bench` (`python -m bench [names...]`) runs `bench_<name>.py` modules,
each driving real server processes with wrk; see bench/README.md."""
