# pmem.poison lab targets. Include from the top Makefile: `include lab/lab.mk`.
#   make lab-build    [FLAVOUR=stock|stock-6.12|stock-7|nfit_test|nfit_test-7|cxl-7]  build (or reuse)
#   make lab-up       [FLAVOUR=...] [LAB_NAME=...] start an instance from the snapshot
#   make lab-ssh      [LAB_NAME=...] [CMD='...']   ssh into it (or run CMD)
#   make lab-down     [LAB_NAME=...]               stop it (its own QEMU PID only)
#   make lab-selftest [LAB_FLAVOURS='stock nfit_test']   (default: every flavour)
#   make lab-cold-check [COLD_FLAVOUR=stock]        build into an empty cache, boot, selftest, remove
# Cache: $(PMEM_LAB_CACHE) (default /var/cache/pmem-poison-lab), keyed by a hash of the recipe.
ifndef LAB_DIR
LAB_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
endif
FLAVOUR ?= stock
LAB_NAME ?= $(FLAVOUR)
LAB_FLAVOURS ?= stock stock-6.12 stock-7 nfit_test nfit_test-7
# Built by lab-build-all, tested by molecule/cxl; not in lab-selftest (guest/selftest-guest.sh knows
# the stock and nfit_test layouts only).
LAB_CXL_FLAVOURS ?= cxl-7
CMD ?=

.PHONY: lab-build lab-up lab-ssh lab-down lab-selftest lab-cold-check

lab-build:
	$(LAB_DIR)/build.sh '$(FLAVOUR)'

lab-up:
	$(LAB_DIR)/up.sh '$(FLAVOUR)' '$(LAB_NAME)'

lab-ssh:
	$(LAB_DIR)/ssh.sh '$(LAB_NAME)' $(CMD)

lab-down:
	$(LAB_DIR)/down.sh '$(LAB_NAME)'

lab-selftest:
	$(LAB_DIR)/selftest.sh $(LAB_FLAVOURS)

# Proof that the lab builds cold today: the cheapest flavour into an EMPTY temporary cache (nothing
# reused: no .deb cache, no package index, no rootfs), resolved from today's archive (the resolved
# versions are in the log), booted from its snapshot, self-tested, then removed. `make test` runs it
# on every CI run, so an archive that moved on shows up as a red build the same day.
COLD_FLAVOUR ?= stock
# On a fresh machine the shared cache is empty: the lab-build-all that follows in `make test` is
# then itself a build from nothing (no .deb cache, no index, no rootfs), so building the same flavour
# cold twice would only spend CI's budget; the check says so and leaves the proof to that build.
lab-cold-check:
	@shared=$${PMEM_LAB_CACHE:-/var/cache/pmem-poison-lab}; \
	if [ -z "$$(ls -A "$$shared" 2>/dev/null)" ]; then \
	  echo "==> lab-cold-check: the lab cache $$shared is empty, so the builds that follow are cold builds from today's archive (this check's proof); not building $(COLD_FLAVOUR) twice"; \
	  exit 0; \
	fi; \
	cache=$$(mktemp -d /var/tmp/pmem-lab-cold.XXXXXX); \
	trap 'rm -rf --one-file-system "$$cache"' EXIT; \
	echo "==> lab-cold-check: $(COLD_FLAVOUR) into the empty cache $$cache"; start=$$(date +%s); \
	PMEM_LAB_CACHE=$$cache $(LAB_DIR)/build.sh '$(COLD_FLAVOUR)' >/dev/null; built=$$(date +%s); \
	cat "$$cache/resolved/$(COLD_FLAVOUR).env" | sed 's/^/    resolved: /'; \
	PMEM_LAB_CACHE=$$cache $(LAB_DIR)/selftest.sh '$(COLD_FLAVOUR)'; \
	echo "==> lab-cold-check $(COLD_FLAVOUR): cold build $$(( built - start )) s, selftest $$(( $$(date +%s) - built )) s"
