#!/usr/bin/env bash
# Brings everything up on a fresh Debian 12 machine (as root) and runs all the services
# on their embedded defaults (SQLite file, noauth, API on 127.0.0.1:8776, the dev Ceph
# cluster, local RabbitMQ, a dev Glance on 127.0.0.1:9292) in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_build_deps
CEPH_CONF=$(scripts/ceph-dev.sh up "${CEPH_DEV_DIR:-/tmp/cinder-rs-ceph}" "${CEPH_DEV_PORT:-6789}")

ensure_rabbitmq
# Glance on 127.0.0.1:9292 with its images in the same cluster's `images` pool: volumes
# from raw images are copy-on-write clones of them.
GLANCE_URL=$(CEPH_CONF=$CEPH_CONF scripts/glance-dev.sh up "${GLANCE_DEV_DIR:-/tmp/cinder-rs-glance}" "${GLANCE_DEV_PORT:-9292}")

log "building the services"
cargo build --bins --locked

mkdir -p /var/lib/cinder-rs
# Services refuse a database with pending migrations: apply them first.
target/debug/cinder-manage db sync
# The embedded defaults, except that the backend uses the dev cluster, and backups go
# to its `backups` pool as client.admin.
export CINDER__BACKENDS__CEPH__RBD_CEPH_CONF="$CEPH_CONF"
ceph -c "$CEPH_CONF" osd pool create backups 8 8 >/dev/null 2>&1 || true
rbd -c "$CEPH_CONF" pool init backups
export CINDER__BACKUP__BACKUP_CEPH_CONF="$CEPH_CONF"
export CINDER__BACKUP__BACKUP_CEPH_USER=admin
export CINDER__GLANCE__API_SERVERS="$GLANCE_URL"
export CINDER__VOLUME__IMAGE_CONVERSION_DIR=/var/lib/cinder-rs/conversion
export CINDER__VOLUME__METRICS_LISTEN=${CINDER__VOLUME__METRICS_LISTEN:-127.0.0.1:9471}

pids=()
stop() {
    log "stopping"
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap 'exit 130' INT TERM
trap stop EXIT
for bin in cinder-api cinder-scheduler cinder-volume cinder-backup; do
    "target/debug/$bin" &
    pids+=($!)
done
log "running (Ctrl-C stops): Ceph at $CEPH_CONF, RabbitMQ on 127.0.0.1:5672, Glance on $GLANCE_URL, metrics on http://$CINDER__VOLUME__METRICS_LISTEN/metrics"
# Any service exiting stops the rest.
wait -n "${pids[@]}"
