#!/usr/bin/env bash
# Benchmarks against the dev cluster; prints the figures and the ratios against the
# references they name (the rbd CLI). Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_build_deps
CEPH_CONF=$(scripts/ceph-dev.sh up "${CEPH_DEV_DIR:-/tmp/cinder-rs-ceph}" "${CEPH_DEV_PORT:-6789}")
export CEPH_CONF
cargo bench --locked -p cinder-tests --bench rbd_diff "$@"
