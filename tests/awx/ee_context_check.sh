#!/usr/bin/env bash
# The execution environment without a container engine: build the collection, run
# `ansible-builder create`, then follow the generated Containerfile's steps in a clean venv (the
# same ansible-core/ansible-runner refs, the collection installed from the context's
# requirements.yml, the Python requirements ansible-builder's introspect.py assembles, bindep's
# list checked) and run the report playbook through ansible-runner from that venv only.
# What this does not execute: the base image (quay.io is unreachable here), dnf and the image's
# system packages (bindep is only evaluated against this Debian host), and the container itself
# (podman installs, but crun cannot set RLIMIT_NOFILE in this sandbox).
#   usage: tests/awx/ee_context_check.sh   (make test-ee)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=/dev/null
source scripts/env.sh
python=${EE_PYTHON:-/usr/bin/python3.11}
work=$(mktemp -d /tmp/pmem-ee-check.XXXXXX)
[[ -n ${EE_KEEP:-} ]] || trap 'rm -rf "$work"' EXIT

mkdir -p .build/ee-src
ansible-galaxy collection build --force --output-path .build/ee-src . >/dev/null
ansible-builder create -f execution-environment.yml --output-filename Containerfile -c "$work/context" >/dev/null
ctx=$work/context/_build
refs=$(sed -n 's/^ARG ANSIBLE_INSTALL_REFS="\(.*\)"$/\1/p' "$work/context/Containerfile")
echo "==> clean venv ($python) with the Containerfile's refs: $refs"
env -u PYTHONPATH "$python" -m venv "$work/venv"
venv=$work/venv/bin
# shellcheck disable=SC2086
"$venv/pip" install -q --disable-pip-version-check $refs bindep pyyaml packaging 2> >(grep -v '^WARNING: Location' >&2)
echo "==> the collection from the context's requirements.yml"
(cd "$ctx" && env -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_COLLECTIONS_PATHS PATH="$venv:/usr/bin:/bin" \
  ansible-galaxy collection install --force --offline -r requirements.yml -p "$work/collections" >"$work/galaxy.log" 2>&1)
grep -v 'is not part of the configured' "$work/galaxy.log" || true
echo "==> Python requirements as introspect.py assembles them"
(cd "$ctx" && "$venv/python" scripts/introspect.py introspect --user-pip=requirements.txt \
  --user-bindep=bindep.txt --write-pip="$work/requirements.txt" --write-bindep="$work/bindep.txt" \
  "$work/collections" >/dev/null)
# introspect.py writes no file when the collection and the EE ask for nothing beyond ansible-core
if [[ -s $work/requirements.txt ]]; then
  sed 's/^/    /' "$work/requirements.txt"
  "$venv/pip" install -q --disable-pip-version-check -r "$work/requirements.txt" 2> >(grep -v '^WARNING: Location' >&2)
else
  echo "    (none)"
fi
echo "==> system packages bindep would install (evaluated on this host's platform):"
if [[ -s $work/bindep.txt ]]; then "$venv/bindep" -b -f "$work/bindep.txt" | sed 's/^/    /' || true; else echo "    (none)"; fi

echo "==> the report job through ansible-runner from the clean venv"
pdd=$work/job
mkdir -p "$pdd/env" "$pdd/inventory" "$pdd/project"
printf 'ee0 ansible_connection=local ansible_python_interpreter=%s ansible_become=false pmem_poison_ledger_path=%s\n' \
  "$venv/python" "$work/ledger.json" >"$pdd/inventory/hosts"
printf '{"pmem_poison_report_dir": "%s", "awx_job_id": 1}\n' "$work/report" >"$pdd/env/extravars"
printf '{"ANSIBLE_COLLECTIONS_PATH": "%s"}\n' "$work/collections" >"$pdd/env/envvars"
env -i HOME="$HOME" PATH="$venv:/usr/bin:/bin" LANG=C.UTF-8 \
  "$venv/ansible-runner" run "$pdd" -p pmem.poison.report -j >"$work/events.jsonl" || {
  tail -c 3000 "$work/events.jsonl"; exit 1; }
"$venv/python" - "$work/events.jsonl" "$pdd" <<'PY'
import glob, json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
stats = [e for e in events if e.get("event") == "playbook_on_stats"]
assert stats, "no playbook_on_stats event"
data = stats[0]["event_data"]
assert not data["failures"], data["failures"]
report = data["artifact_data"]["pmem_poison_report"]
assert report["totals"]["hosts"] == 1 and report["hosts_clean"] == ["ee0"], report["totals"]
status = open(glob.glob(sys.argv[2] + "/artifacts/*/status")[0]).read().strip()
assert status == "successful", status
print("==> ansible-runner status %s; artifact_data: pmem_poison_report (1 host, clean), pmem_poison_hosts %s"
      % (status, sorted(data["artifact_data"]["pmem_poison_hosts"])))
PY
