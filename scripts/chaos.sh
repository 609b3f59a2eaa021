#!/usr/bin/env bash
# The long fault loops against the real binaries. The test suite (scripts/test.sh) runs
# a short version of each; this runs them long, one after the other, and prints their
# figures. Not part of CI.
#
#   scripts/chaos.sh [rounds]      # repeated kill -9 amid mixed work (default 10 rounds)
#
# Environment: CINDER_CHAOS_SEED repeats a run (each run prints its seed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_build_deps
CEPH_CONF=$(scripts/ceph-dev.sh up "${CEPH_DEV_DIR:-/tmp/cinder-rs-ceph}" "${CEPH_DEV_PORT:-6789}")
export CEPH_CONF
ensure_rabbitmq
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export CINDER_CHAOS_ROUNDS=${1:-${CINDER_CHAOS_ROUNDS:-10}}
log "repeated kill -9: $CINDER_CHAOS_ROUNDS rounds"
cargo test --locked -p cinder-tests --test it -- --exact --nocapture \
    chaos::repeated_kill_9_amid_mixed_work_leaves_everything_final_and_nothing_orphaned
