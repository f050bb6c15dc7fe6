# pmem.poison: `make bench` (included from the top Makefile). Needs root, xfsprogs, e2fsprogs.
# BENCH_FILES=1000000 scales the tree (default 100000); BENCH_FS="ext4" runs one filesystem.
# Prints timings and ratios and never asserts them (the fleet bench asserts the rollout's behaviour).
PMEM_BENCH_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PMEM_BENCH_REPO := $(abspath $(PMEM_BENCH_DIR)/../..)
BENCH_PYTHON ?= $(PMEM_BENCH_REPO)/.venv/bin/python

.PHONY: bench bench-resolve bench-paths bench-lab
# Owner resolution and inode -> paths on loop devices, the two lab benchmarks (facts on a clean host and the
# remediate converge, each against `ansible -m ping` measured in the same run), then the fleet bench.
bench: bench-resolve bench-paths bench-lab bench-fleet

bench-resolve:
	cd $(PMEM_BENCH_REPO) && bash -c '. scripts/env.sh && exec $(BENCH_PYTHON) tests/bench/bench_resolve.py'

# Inode -> paths on one XFS with parent pointers: GETPARENTS against the walk, same tree, same run.
# BENCH_PATH_FILES=1000000 (default) files, BENCH_PATH_INODES=512 inodes named.
bench-paths:
	cd $(PMEM_BENCH_REPO) && bash -c '. scripts/env.sh && exec $(BENCH_PYTHON) tests/bench/bench_paths.py'

bench-lab:
	$(PMEM_BENCH_REPO)/lab/build.sh stock
	cd $(PMEM_BENCH_REPO) && bash tests/bench/bench_badblocks.sh && bash tests/bench/bench_converge.sh

.PHONY: test-awx test-ee bench-fleet
# AWX's path, executed: scan/remediate/report jobs through ansible-runner (tests/awx); part of `make test`.
test-awx:
	cd $(PMEM_BENCH_REPO) && bash -c '. scripts/env.sh && exec python -m pytest -p no:cacheprovider -q tests/awx'

# The execution environment's dependency set from `ansible-builder create`, installed into a clean
# venv and run through ansible-runner (no container engine can run here; the script says what is not run).
test-ee:
	bash $(PMEM_BENCH_REPO)/tests/awx/ee_context_check.sh
# A simulated fleet (local connections, own ledgers): converge vs ping, report cost, the rollout.
# BENCH_FLEET_SIZES="200 1000" (default), BENCH_FORKS=10.
bench-fleet:
	cd $(PMEM_BENCH_REPO) && bash -c '. scripts/env.sh && exec python tests/bench/bench_fleet.py'
