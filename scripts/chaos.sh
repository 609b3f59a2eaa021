#!/usr/bin/env bash
# The long fault loops against the real binaries. The test suite (scripts/test.sh) runs
# a short version of each; this runs them long, one after the other, and prints their
# figures. Not part of CI.
#
#   scripts/chaos.sh [rounds]
#
# 1. repeated kill -9 amid mixed work (default 10 rounds; the suite runs 3);
# 2. the outages (tests/outages) at full length: the broker gone 30 s (the suite: 12 s),
#    the OSDs paused 20 s (the suite: 10 s), the broker and a PostgreSQL restarted.
#
# Environment: CINDER_CHAOS_SEED repeats a run (each run prints its seed);
# CINDER_BROKER_GONE_SECS, CINDER_OSD_PAUSE_SECS override the outages' lengths.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_build_deps
CEPH_CONF=$(scripts/ceph-dev.sh up "${CEPH_DEV_DIR:-/tmp/cinder-rs-ceph}" "${CEPH_DEV_PORT:-6789}")
export CEPH_CONF
ensure_rabbitmq
ensure_postgres
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export CINDER_CHAOS_ROUNDS=${1:-${CINDER_CHAOS_ROUNDS:-10}}
# The tests run the real binary next to their own (target/debug/cinder-volume); a test
# run of one crate does not rebuild it, and a stale one would test old code.
log "building cinder-volume"
cargo build --locked -p cinder-volume --bin cinder-volume
log "repeated kill -9: $CINDER_CHAOS_ROUNDS rounds"
cargo test --locked -p cinder-tests --test it -- --exact --nocapture \
    chaos::repeated_kill_9_amid_mixed_work_leaves_everything_final_and_nothing_orphaned
export CINDER_BROKER_GONE_SECS=${CINDER_BROKER_GONE_SECS:-30}
export CINDER_OSD_PAUSE_SECS=${CINDER_OSD_PAUSE_SECS:-20}
log "outages: broker gone ${CINDER_BROKER_GONE_SECS} s, OSDs paused ${CINDER_OSD_PAUSE_SECS} s"
cargo test --locked -p cinder-tests --test outages -- --nocapture
