#!/usr/bin/env bash
# Builds the Debian package (target/debian/cti-relay_VERSION_ARCH.deb) with cargo-deb:
#
#   cargo install cargo-deb --locked      # once
#   deploy/debian/build.sh                # from a release build
#   PROFILE=dev deploy/debian/build.sh    # from the test build (CI's install check)
#
# The package holds /usr/bin/relay, the systemd unit (installed, not enabled), the commented
# example configuration as the conffile /etc/cti-relay/relay.yaml (state in /var/lib/cti-relay,
# logs in /var/log/cti-relay), the manual pages and the bash, zsh and fish completions, all
# made here from the binary itself. The simulators are not in it (they are for tests and load
# runs, built from source).
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${PROFILE:-release}
case "$profile" in
  dev) out=debug ;;
  *) out=$profile ;;
esac
cargo build --profile "$profile" -p relay-cli --bin relay
relay="target/$out/relay"

assets=target/debian-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$relay" man "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1
"$relay" completions bash >"$assets/completions/relay"
"$relay" completions zsh >"$assets/completions/_relay"
"$relay" completions fish >"$assets/completions/relay.fish"
# The example, with the packaged directories.
sed -e 's|^state_dir: ./state           |state_dir: /var/lib/cti-relay|' \
    -e 's|^log_dir: ./log               |log_dir: /var/log/cti-relay  |' \
    config/relay.example.yaml >"$assets/relay.yaml"
grep -q '^state_dir: /var/lib/cti-relay' "$assets/relay.yaml"
grep -q '^log_dir: /var/log/cti-relay' "$assets/relay.yaml"
# The unit, for the packaged binary (its comment's manual installation steps left out).
sed -e 's|/usr/local/bin/relay|/usr/bin/relay|g' -e '/^# Install:/,/^#   systemctl daemon-reload/d' \
    deploy/cti-relay.service >"$assets/cti-relay.service"
"$relay" check --config "$assets/relay.yaml" >/dev/null

cargo deb -p relay-cli --no-build --profile "$profile"
