#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root: installs what is missing,
# starts two throwaway Ceph clusters on loopback (the second one for cross-cluster
# tests), PostgreSQL, MariaDB and RabbitMQ when they are not running, checks formatting and lints,
# runs every test, and removes the test pools (database tests drop their own databases).
#
#   scripts/test.sh [extra cargo test arguments]
#
# Environment: CEPH_DEV_DIR / CEPH_DEV_DIR_B (cluster directories), CEPH_DEV_PORT /
# CEPH_DEV_PORT_B (mon ports, default 6789 / 6790); KEYSTONE_TEST_DIR / KEYSTONE_TEST_PORT
# (the test Keystone, default /tmp/cinder-rs-keystone-test on 35358: tokens of 30 s, so
# that the API test sees one expire); GLANCE_TEST_DIR / GLANCE_TEST_PORT (the test Glance,
# default /tmp/cinder-rs-glance-test on 9293); GLANCE_KS_TEST_DIR / GLANCE_KS_TEST_PORT (a
# second one that checks the test Keystone's tokens, default /tmp/cinder-rs-glance-ks on
# 9295).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# The suite checks the RPC golden files; only a hand run of `cargo test -p cinder-rpc`
# may rewrite them.
[ -z "${UPDATE_GOLDEN:-}" ] \
    || die "UPDATE_GOLDEN is set: the test suite checks the golden files and never rewrites them"
ensure_build_deps
CEPH_CONF=$(scripts/ceph-dev.sh up "${CEPH_DEV_DIR:-/tmp/cinder-rs-ceph}" "${CEPH_DEV_PORT:-6789}")
CEPH_CONF_B=$(scripts/ceph-dev.sh up "${CEPH_DEV_DIR_B:-/tmp/cinder-rs-ceph-b}" "${CEPH_DEV_PORT_B:-6790}")
export CEPH_CONF CEPH_CONF_B
ensure_postgres
ensure_mariadb
ensure_rabbitmq
ensure_openstack_clients
# The Keystone test puts socat, with a certificate the openssl CLI makes, in front of
# Keystone to reach it over HTTPS; the RBD tests set a trash entry's state through
# Debian's python3-rados (/usr/bin/python3).
apt_install socat openssl python3-rados
scripts/keystone-dev.sh install
scripts/glance-dev.sh install
# The test Keystone starts in the background while cargo builds (it takes ~20 s of
# Python start-up); the tests wait for it below.
ks_out=$(mktemp)
(KEYSTONE_DEV_TOKEN_EXPIRATION=30 scripts/keystone-dev.sh up \
    "${KEYSTONE_TEST_DIR:-/tmp/cinder-rs-keystone-test}" "${KEYSTONE_TEST_PORT:-35358}" \
    >"$ks_out" 2>"$ks_out.log") &
ks_pid=$!
# The test Glance (images in the first cluster's `images` pool) likewise (~10 s), then a
# second one that checks the test Keystone's tokens (it needs Keystone only when asked).
# One after the other: both would create the `images` pool on a fresh cluster.
gl_out=$(mktemp)
glk_out=$(mktemp)
(
    CEPH_CONF=$CEPH_CONF scripts/glance-dev.sh up \
        "${GLANCE_TEST_DIR:-/tmp/cinder-rs-glance-test}" "${GLANCE_TEST_PORT:-9293}" \
        >"$gl_out" 2>"$gl_out.log" || exit 1
    CEPH_CONF=$CEPH_CONF GLANCE_DEV_KEYSTONE_URL="http://127.0.0.1:${KEYSTONE_TEST_PORT:-35358}/v3" \
        scripts/glance-dev.sh up "${GLANCE_KS_TEST_DIR:-/tmp/cinder-rs-glance-ks}" \
        "${GLANCE_KS_TEST_PORT:-9295}" >"$glk_out" 2>"$glk_out.log" || exit 2
) &
gl_pid=$!
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export CINDER_TEST_POSTGRES_URL=${CINDER_TEST_POSTGRES_URL:-postgres://cinder_test:cinder_test@127.0.0.1:5432/postgres}
export CINDER_TEST_MYSQL_URL=${CINDER_TEST_MYSQL_URL:-mysql://cinder_test:cinder_test@127.0.0.1:3306/mysql}

# Pools the integration tests create are named it-*; remove them (and any left by an
# interrupted earlier run) so the in-memory OSD does not fill up.
# Eight at a time: each delete waits for the monitors' next map, which takes in all the
# deletes pending (one at a time, the hundreds a crashed run leaves took minutes).
remove_test_pools() {
    { ceph -c "$CEPH_CONF" osd pool ls 2>/dev/null | grep '^it-' || true; } \
        | xargs -r -P 8 -I{} ceph -c "$CEPH_CONF" osd pool delete {} {} --yes-i-really-really-mean-it \
            >/dev/null 2>&1 || true
}
remove_test_pools
finish() {
    remove_test_pools
    # An early failure (fmt, clippy) must not leave the Keystone start running.
    kill "$ks_pid" "$gl_pid" 2>/dev/null || true
    rm -f "$ks_out" "$ks_out.log" "$gl_out" "$gl_out.log" "$glk_out" "$glk_out.log"
}
trap finish EXIT

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
if ! wait "$ks_pid"; then
    cat "$ks_out.log" >&2
    die "the test Keystone did not start (scripts/keystone-dev.sh up)"
fi
KEYSTONE_URL=$(cat "$ks_out")
export KEYSTONE_URL
gl_rc=0
wait "$gl_pid" || gl_rc=$?
if [ "$gl_rc" -ne 0 ]; then
    cat "$gl_out.log" "$glk_out.log" >&2 2>/dev/null || true
    die "the test Glances did not start (scripts/glance-dev.sh up; exit $gl_rc)"
fi
GLANCE_URL=$(cat "$gl_out")
export GLANCE_URL
GLANCE_KEYSTONE_URL=$(cat "$glk_out")
export GLANCE_KEYSTONE_URL
log "cargo test (CEPH_CONF=$CEPH_CONF, CEPH_CONF_B=$CEPH_CONF_B, KEYSTONE_URL=$KEYSTONE_URL, GLANCE_URL=$GLANCE_URL, GLANCE_KEYSTONE_URL=$GLANCE_KEYSTONE_URL)"
# A test process that dies of a signal (librados and librbd abort on broken invariants),
# or a service binary a test runs, leaves a core file; the run prints where each one
# died (a passing run too: a service that crashed and was restarted is news), so a crash
# that happens once in many runs can be read from the one run that saw it.
ulimit -c unlimited 2>/dev/null || log "cannot lift the core file limit: a crash will show no backtrace"
rc=0
cargo test --workspace --locked "$@" || rc=$?
print_core_backtraces .
exit "$rc"
