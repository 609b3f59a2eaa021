#!/usr/bin/env bash
# Benchmarks against the dev cluster; each prints its figures and the ratios or bounds
# against the references it names. Not part of the test suite.
#
#   scripts/bench.sh                    # every benchmark
#   scripts/bench.sh rbd_diff           # export-diff/import-diff against the rbd CLI
#   scripts/bench.sh volume_service     # creates/s through the queue; short under long work
#   scripts/bench.sh scheduler          # placements/s through the queue; decisions/s in process
#   scripts/bench.sh api                # the v3 API: idle RSS, creates and lists per second
#   scripts/bench.sh backup             # full/incremental backup and restore against the CLI pipe
#   scripts/bench.sh images             # volumes from images by clone (1-16 GiB) and by download,
#                                       # uploads; against Cinder's driver steps (needs Glance:
#                                       # started on GLANCE_BENCH_PORT, default 9294)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_build_deps
CEPH_CONF=$(scripts/ceph-dev.sh up "${CEPH_DEV_DIR:-/tmp/cinder-rs-ceph}" "${CEPH_DEV_PORT:-6789}")
export CEPH_CONF
ensure_rabbitmq
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
# The scheduler bench also measures on PostgreSQL.
ensure_postgres
export CINDER_TEST_POSTGRES_URL=${CINDER_TEST_POSTGRES_URL:-postgres://cinder_test:cinder_test@127.0.0.1:5432/postgres}
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(rbd_diff volume_service scheduler api backup images)
for b in "${benches[@]}"; do
    if [ "$b" = images ]; then
        GLANCE_URL=$(CEPH_CONF=$CEPH_CONF scripts/glance-dev.sh up \
            "${GLANCE_BENCH_DIR:-/tmp/cinder-rs-glance-bench}" "${GLANCE_BENCH_PORT:-9294}")
        export GLANCE_URL
    fi
    if [ "$b" = api ] || [ "$b" = backup ] || [ "$b" = images ]; then
        # These benches run the release binaries as their own processes.
        cargo build --release --locked -p cinder-api -p cinder-scheduler -p cinder-volume -p cinder-manage -p cinder-backup --bins
    fi
    cargo bench --locked -p cinder-tests --bench "$b"
    if [ "$b" = api ]; then
        # The floor under the volume service's idle RSS: a bare C librbd client.
        probe=target/librbd-rss-floor
        cc -O2 -Wall scripts/probes/librbd-rss-floor.c -o "$probe" -lrbd -lrados
        echo "a bare librbd client in C (no service code), for the volume service's figure:"
        "$probe" "$CEPH_CONF" rbd 1
        "$probe" "$CEPH_CONF" rbd 2 | tail -1
    fi
done
