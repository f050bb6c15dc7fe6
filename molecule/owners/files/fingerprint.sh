#!/usr/bin/env bash
# What must not change in check mode: the ledger (or its absence), every badblocks list, the
# victims' contents and modes, and the report directory. One line per item, sorted.
set -euo pipefail
{
  sha256sum /var/lib/pmem-poison/ledger.json 2>/dev/null || echo "no ledger"
  for f in /sys/block/pmem*/badblocks; do echo "$f $(tr '\n' ';' <"$f")"; done
  find /mnt/pmem-xfs/farm /mnt/pmem-xfs/sector /mnt/pmem-ext4/x /mnt/pmem-ext4/y -type f \
    -exec stat -c '%n %a %i' {} +
  for f in /mnt/pmem-xfs/farm/* /mnt/pmem-xfs/sector /mnt/pmem-ext4/x /mnt/pmem-ext4/y; do
    sha256sum "$f" 2>&1 || true
  done
  ls -la /mnt/pmem-xfs/.pmem-poison* /mnt/pmem-ext4/.pmem-poison* 2>/dev/null || true
} | sort
