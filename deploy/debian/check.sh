#!/usr/bin/env bash
# Installs a cti-relay package on this machine, checks what it installed, runs the relay as
# its system user, reads /api/status, and purges it again. As root:
#
#   deploy/debian/check.sh target/debian/cti-relay_*.deb
set -euo pipefail
deb=$1
if dpkg -s cti-relay >/dev/null 2>&1; then
  echo "cti-relay is installed on this machine already: not touching it" >&2
  exit 1
fi
say() { echo "-- $*"; }
log=$(mktemp)
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  dpkg --purge cti-relay >/dev/null 2>&1 || true
  rm -f "$log"
}
trap cleanup EXIT

say "dpkg -i $deb"
dpkg -i "$deb"
say "the system user, the directories and the conffile"
id ctirelay
test "$(stat -c %U:%G:%a /etc/cti-relay/relay.yaml)" = ctirelay:ctirelay:640
test "$(stat -c %U:%G:%a /var/lib/cti-relay)" = ctirelay:ctirelay:750
test "$(stat -c %U:%G:%a /var/log/cti-relay)" = ctirelay:ctirelay:750
grep -q '^state_dir: /var/lib/cti-relay' /etc/cti-relay/relay.yaml
test -s /usr/share/man/man1/relay.1.gz
test -s /usr/share/bash-completion/completions/relay
say "relay check --config /etc/cti-relay/relay.yaml"
relay check --config /etc/cti-relay/relay.yaml
if command -v systemd-analyze >/dev/null; then
  say "systemd-analyze verify"
  systemd-analyze verify /usr/lib/systemd/system/cti-relay.service
fi

say "relay run as ctirelay"
cd /var/lib/cti-relay
runuser -u ctirelay -- /usr/bin/relay run --config /etc/cti-relay/relay.yaml >"$log" 2>&1 &
relay_pid=$!
status=""
for _ in $(seq 50); do
  status=$(relay ctl --config /etc/cti-relay/relay.yaml --json status 2>/dev/null) && break
  sleep 0.2
done
if ! grep -q '"licence"' <<<"$status"; then
  echo "no status from the packaged relay; its log:" >&2
  cat "$log" >&2
  exit 1
fi
# Other relays (a soak beside this check) may run on the machine: look for ours by its user.
pgrep -u ctirelay -x relay >/dev/null || { echo "no relay process runs as ctirelay" >&2; exit 1; }
test -s /var/lib/cti-relay/admin.token
say "/api/status answered: $(head -c 120 <<<"$status")…"
kill "$relay_pid"
wait "$relay_pid" 2>/dev/null || true
relay_pid=""

say "dpkg --purge cti-relay"
dpkg --purge cti-relay
! id ctirelay 2>/dev/null
test ! -e /var/lib/cti-relay && test ! -e /etc/cti-relay && test ! -e /usr/bin/relay
say "the package installs, runs as ctirelay and purges cleanly"
