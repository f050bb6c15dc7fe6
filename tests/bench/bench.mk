# pmem.poison: `make bench` (included from the top Makefile). Needs root, xfsprogs, e2fsprogs.
# BENCH_FILES=1000000 scales the tree (default 100000); BENCH_FS="ext4" runs one filesystem.
# Prints timings and ratios; asserts nothing.
PMEM_BENCH_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PMEM_BENCH_REPO := $(abspath $(PMEM_BENCH_DIR)/../..)
BENCH_PYTHON ?= $(PMEM_BENCH_REPO)/.venv/bin/python

.PHONY: bench
bench:
	cd $(PMEM_BENCH_REPO) && bash -c '. scripts/env.sh && exec $(BENCH_PYTHON) tests/bench/bench_resolve.py'
