#!/usr/bin/env bash
# Victims for molecule/owners on the shared stock layout (molecule/shared/files/lab_prepare.sh):
# XFS reflink+rmapbt -o dax on the whole e820 device (/mnt/pmem-xfs), ext4 -o dax on e820 p1
# (/mnt/pmem-ext4). One remote task; idempotent (a second run prints the saved state).
#   XFS  dir/        3000 entries; poison under its second data block (metadata: directory)
#   XFS  links/      40 symlinks with 900-byte targets (remote blocks); poison under one (symlink)
#   ext4 links/      40 symlinks with 200-byte targets (block symlinks); poison under one (symlink)
#   ext4 x, y        16 KiB each, physically adjacent; one 8 KiB range: last page of x, first of y
#   XFS  sector      64 KiB; one 512-byte sector at file offset 20992 (inside page 5)
#   XFS  farm/a b c  reflinked (cp --reflink), farm/a-link a hard link to a; poison under page 1
# Copies of every file are in /root/backup/<fs>/ (the scenario hands them out in two rounds).
# Environment: POISON_SCRIPT (the text of molecule/shared/files/inject_poison.sh).
# Prints one JSON object (also /etc/pmem-lab/owners-state.json): what was poisoned where.
# Runs after molecule/shared/files/layout_lib.sh (prepare.yml prepends it).
state=/etc/pmem-lab/owners-state.json
layout_done "$state"
xfs=/mnt/pmem-xfs
ext4=/mnt/pmem-ext4
xfs_dev=$(findmnt -n -o SOURCE "$xfs")
ext4_dev=$(findmnt -n -o SOURCE "$ext4")
[[ $(findmnt -n -o FSTYPE "$xfs") == xfs && $(findmnt -n -o FSTYPE "$ext4") == ext4 ]] ||
  layout_die "the shared layout is not mounted (molecule/shared/tasks/lab_prepare.yml)"
mkdir -p /root/backup/xfs/farm /root/backup/ext4 /etc/pmem-lab
injected=()

# inject_dev DEVICE SECTOR SECTORS MOUNT: a device range, the filesystem frozen around it (writeback
# over an injected e820 sector would clear it).
inject_dev() {
  local out
  sync
  fsfreeze -f "$4"
  out=$(POISON_DEVICE=$1 POISON_SECTOR=$2 POISON_SECTORS=$3 POISON_METHOD=sysfs bash -c "$POISON_SCRIPT" | tail -1) ||
    { fsfreeze -u "$4"; layout_die "injection at $1 sector $2 failed"; }
  fsfreeze -u "$4"
  injected+=("$out")
}
inject_file() { # inject_file FILE OFFSET LENGTH
  injected+=("$(POISON_FILE=$1 POISON_FILE_OFFSET=$2 POISON_LENGTH=$3 POISON_METHOD=sysfs bash -c "$POISON_SCRIPT" | tail -1)")
}
# xfs_block INODE FILE_SECTOR: the filesystem sector (512 B) of an inode's data-fork sector, by GETFSMAP
# (xfs_io fsmap rows "N: M:m [start..end]: inode INO data off..end LEN").
xfs_block() {
  xfs_io -c fsmap "$xfs" | awk -v ino="$1" -v want="$2" '
    $4 == "inode" && $5 == ino && $6 == "data" {
      split($3, p, /[][.:]+/); split($7, l, /[.]+/)
      if (want >= l[1] && want <= l[2]) { print p[2] + want - l[1]; exit }
    }'
}

# 1. metadata: an XFS directory (node/leaf format with 3000 long names), XFS and ext4 remote symlinks
mkdir "$xfs/dir" "$xfs/links" "$ext4/links"
for i in $(seq 3000); do : >"$xfs/dir/entry-with-a-name-long-enough-to-fill-blocks-$i"; done
for i in $(seq 40); do
  ln -s "/nowhere/$(printf 't%.0s' $(seq 900))/$i" "$xfs/links/l$i"
  ln -s "/nowhere/$(printf 't%.0s' $(seq 200))/$i" "$ext4/links/l$i"
done
sync
dir_ino=$(stat -c %i "$xfs/dir")
dir_sector=$(xfs_block "$dir_ino" 8)           # the second directory data block (file sector 8)
[[ $dir_sector =~ ^[0-9]+$ ]] || layout_die "no second data block for $xfs/dir (inode $dir_ino)"
inject_dev "$xfs_dev" "$dir_sector" 8 "$xfs"
xlink_ino=$(stat -c %i "$xfs/links/l20")
xlink_sector=$(xfs_block "$xlink_ino" 0)
[[ $xlink_sector =~ ^[0-9]+$ ]] || layout_die "$xfs/links/l20 has no remote block"
inject_dev "$xfs_dev" "$xlink_sector" 8 "$xfs"
elink_ino=$(stat -c %i "$ext4/links/l20")
elink_blk=$(debugfs -R "bmap <$elink_ino> 0" "$ext4_dev" 2>/dev/null)
[[ $elink_blk =~ ^[0-9]+$ && $elink_blk -gt 0 ]] || layout_die "$ext4/links/l20 has no block ($elink_blk)"
inject_dev "$ext4_dev" $((elink_blk * 8)) 8 "$ext4"

# 2. a range across two ext4 files (x's last page, y's first page), then one unaligned XFS sector
phys() { xfs_io -r -c 'fiemap -v' "$1" | awk -v s="$2" '
  $1 ~ /^[0-9]+:$/ && $3 != "hole" { split($2, l, /[][.:]+/); split($3, p, /[.:]+/)
    if (s >= l[2] && s <= l[3]) { print p[1] + (s - l[2]); exit } }'; }
adjacent=
for try in 1 2 3 4 5; do
  head -c 16384 /dev/urandom >/root/backup/ext4/x
  head -c 16384 /dev/urandom >/root/backup/ext4/y
  cp /root/backup/ext4/x "$ext4/x"; sync "$ext4/x"
  cp /root/backup/ext4/y "$ext4/y"; sync "$ext4/y"
  if [[ $(( $(phys "$ext4/x" 24) + 8 )) == "$(phys "$ext4/y" 0)" ]]; then adjacent=1; break; fi
  mv "$ext4/x" "$ext4/pad-x-$try"; mv "$ext4/y" "$ext4/pad-y-$try"   # try the next blocks
done
[[ -n $adjacent ]] || layout_die "could not lay out two physically adjacent files on $ext4"
straddle_sector=$(( $(cat /sys/class/block/"${ext4_dev#/dev/}"/start) + $(phys "$ext4/x" 24) ))
inject_dev "$(basename "$(readlink -f /sys/class/block/"${ext4_dev#/dev/}"/..)")" "$straddle_sector" 16 "$ext4"
# (inject_poison.sh adds the partition start only for a partition name: the disk is given here)
head -c 65536 /dev/urandom >/root/backup/xfs/sector
cp /root/backup/xfs/sector "$xfs/sector"
inject_file "$xfs/sector" 20992 512

# 3. a reflink farm: a, b, c share every extent; a-link is a hard link to a
head -c 32768 /dev/urandom >/root/backup/xfs/farm/a
mkdir "$xfs/farm"
cp /root/backup/xfs/farm/a "$xfs/farm/a"
for n in b c; do
  cp /root/backup/xfs/farm/a "/root/backup/xfs/farm/$n"
  cp --reflink=always "$xfs/farm/a" "$xfs/farm/$n"
done
ln "$xfs/farm/a" "$xfs/farm/a-link"
inject_file "$xfs/farm/a" 4096 4096

# The lab's injection log (molecule/shared/tests) and this scenario's state.
printf '%s\n' "${injected[@]}" >>/etc/pmem-lab/injected.jsonl
python3 - "$state" "$dir_ino" "$xlink_ino" "$elink_ino" "${injected[@]}" <<'EOF'
import json, os, sys
path, dir_ino, xlink_ino, elink_ino, *injected = sys.argv[1:]
inj = [json.loads(line) for line in injected]
names = ["dir", "xfs_symlink", "ext4_symlink", "straddle", "sector", "farm"]
state = {"injected": dict(zip(names, inj)),
         "inodes": {"dir": int(dir_ino), "xfs_symlink": int(xlink_ino), "ext4_symlink": int(elink_ino)}}
with open(path + ".tmp", "w") as f:
    json.dump(state, f, indent=1)
os.rename(path + ".tmp", path)
EOF
cat "$state" >&3
