# Source me: puts the project's pinned tooling first on PATH and makes the checkout importable as
# the collection pmem.poison (ansible_collections/pmem/poison -> this checkout).
# shellcheck shell=bash
PMEM_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PMEM_REPO
mkdir -p "$PMEM_REPO/.build/collections/ansible_collections/pmem"
ln -sfn "$PMEM_REPO" "$PMEM_REPO/.build/collections/ansible_collections/pmem/poison"
export ANSIBLE_COLLECTIONS_PATH="$PMEM_REPO/.build/collections"
# awx.awx (fetched by `make lint`) lets ansible-lint check examples/awx offline.
if [ -d "$PMEM_REPO/.build/awx/ansible_collections" ]; then
  ANSIBLE_COLLECTIONS_PATH="$ANSIBLE_COLLECTIONS_PATH:$PMEM_REPO/.build/awx"
fi
export PYTHONPATH="$PMEM_REPO/.build/collections${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$PMEM_REPO/.venv/bin:$PATH"
export ANSIBLE_PYTHON_INTERPRETER="${ANSIBLE_PYTHON_INTERPRETER:-auto_silent}"
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}"
