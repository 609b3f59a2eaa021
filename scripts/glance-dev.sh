#!/usr/bin/env bash
# A throwaway OpenStack Glance (Debian's glance-api, Zed) on loopback whose images live in
# the dev Ceph cluster's `images` pool, for development and tests.
#
#   scripts/glance-dev.sh up     [DIR] [PORT]   start (or reuse) Glance; prints its endpoint URL
#   scripts/glance-dev.sh down   [DIR]          stop the server this script started and remove DIR
#   scripts/glance-dev.sh status [DIR]          exit 0 and print the endpoint URL when it answers
#   scripts/glance-dev.sh install               install the packages only
#
# The endpoint is http://127.0.0.1:PORT (PORT defaults to 9292). The cluster is the one of
# CEPH_CONF (default /tmp/cinder-rs-ceph/ceph.conf, the dev cluster of scripts/ceph-dev.sh);
# its pool GLANCE_DEV_POOL (default `images`) is created when missing. Glance runs
# unauthenticated (every caller is admin, `owner` null), in one process (`workers = 0`) that
# leads its own process group, with a SQLite database, `show_image_direct_url` and
# `show_multiple_locations` on (Cinder's clone path reads `direct_url` and `locations`), and
# the RBD store as client.admin (`rbd_store_user` must be set: unset, glance_store hands the
# string "None" to librados). A `policy.d` file opens the calls Zed's defaults reserve to a
# literal `role:admin` (public images, locations), which the unauthenticated pipeline
# never has. Everything lives in DIR: glance-api.conf, the database, staging, pid, logs.
# `up` reuses a running Glance of DIR only when it serves the same cluster (same fsid) in
# the same mode.
#
# With GLANCE_DEV_KEYSTONE_URL (a Keystone's .../v3, such as scripts/keystone-dev.sh's) it
# validates tokens instead (`flavor = keystone`): images belong to the token's project
# and private ones are invisible to other projects. keystonemiddleware checks tokens as
# that Keystone's service user GLANCE_DEV_SERVICE_USER / GLANCE_DEV_SERVICE_PASSWORD
# (default cinder / cinder, the user keystone-dev.sh makes; project `service`).
# Everything but the final URL goes to stderr, so `url=$(glance-dev.sh up)` works.
set -euo pipefail

cmd=${1:-}
DIR=${2:-${GLANCE_DEV_DIR:-/tmp/cinder-rs-glance}}
PORT=${3:-${GLANCE_DEV_PORT:-9292}}
CEPH_CONF=${CEPH_CONF:-/tmp/cinder-rs-ceph/ceph.conf}
POOL=${GLANCE_DEV_POOL:-images}
KEYSTONE=${GLANCE_DEV_KEYSTONE_URL:-}
mode=${KEYSTONE:-noauth}
# What an anonymous GET /v2/images answers once Glance serves.
ready_code=200
[ -z "$KEYSTONE" ] || ready_code=401

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
case "$CEPH_CONF" in /*) ;; *) CEPH_CONF="$PWD/$CEPH_CONF" ;; esac
conf="$DIR/glance-api.conf"
pidfile="$DIR/glance.pid"
url="http://127.0.0.1:$PORT"

ensure_packages() {
    [ -x /usr/bin/glance-api ] && [ -x /usr/bin/glance-manage ] \
        && /usr/bin/python3 -c 'import rbd, glance_store' 2>/dev/null \
        && command -v curl >/dev/null 2>&1 && return 0
    # python3-rbd is not pulled in by python3-glance-store; glance-api's maintainer
    # scripts leave the packaged service stopped (Debian's policy layer), which we keep.
    apt_install glance-api python3-rbd curl
}

server_pid() { live_pid "$pidfile" glance-api; }

# True when the Glance of $DIR runs, was fully set up and answers on its recorded URL
# (GET /v2/images: `GET /` answers 300, the versions list).
answers() {
    [ -f "$DIR/ready" ] && [ -f "$DIR/endpoint" ] || return 1
    server_pid >/dev/null || return 1
    [ "$(http_status "$(cat "$DIR/endpoint")/v2/images?limit=1")" = "$ready_code" ]
}

stop_glance() {
    local pid
    if pid=$(server_pid); then
        log "stopping glance-api ($pid)"
        kill_group "$pid"
    fi
    remove_state_dir "$DIR" "$conf"
}

# The pipeline and keystonemiddleware's settings when tokens are validated.
keystone_conf() {
    [ -n "$KEYSTONE" ] || return 0
    cat <<EOF
flavor = keystone

[keystone_authtoken]
www_authenticate_uri = $KEYSTONE
auth_url = $KEYSTONE
auth_type = password
username = ${GLANCE_DEV_SERVICE_USER:-cinder}
password = ${GLANCE_DEV_SERVICE_PASSWORD:-cinder}
user_domain_id = default
project_name = service
project_domain_id = default
EOF
}

write_conf() {
    cat >"$conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $PORT
workers = 0
log_dir = $DIR/log
log_file = glance-api.log
use_stderr = false
debug = ${GLANCE_DEV_DEBUG:-false}
enabled_backends = ceph:rbd
show_image_direct_url = True
show_multiple_locations = True
image_size_cap = 1099511627776

[database]
connection = sqlite:///$DIR/glance.sqlite

[paste_deploy]
config_file = /usr/share/glance-common/glance-api-paste.ini
$(keystone_conf)

[glance_store]
default_backend = ceph

[ceph]
rbd_store_pool = $POOL
rbd_store_user = admin
rbd_store_ceph_conf = $CEPH_CONF

[os_glance_staging_store]
filesystem_store_datadir = $DIR/staging

[os_glance_tasks_store]
filesystem_store_datadir = $DIR/tasks

[oslo_policy]
policy_file = $DIR/policy.yaml
policy_dirs = $DIR/policy.d
EOF
    mkdir -p "$DIR/policy.d"
    cat >"$DIR/policy.d/open.yaml" <<'EOF'
"publicize_image": ""
"communitize_image": ""
"set_image_location": ""
"delete_image_location": ""
"get_image_location": ""
EOF
}

# The id of the cluster of $CEPH_CONF (a dev cluster made again has a new one, and
# neither the images pool nor what Glance recorded of its images).
cluster_fsid() { ceph -c "$CEPH_CONF" fsid 2>/dev/null; }

start_glance() {
    [ -f "$CEPH_CONF" ] || die "no Ceph cluster at $CEPH_CONF (scripts/ceph-dev.sh up first, or set CEPH_CONF)"
    ceph -c "$CEPH_CONF" osd pool ls | grep -qx "$POOL" || {
        ceph -c "$CEPH_CONF" osd pool create "$POOL" 8 8 >/dev/null 2>&1 || true
        rbd -c "$CEPH_CONF" pool init "$POOL"
    }
    mkdir -p "$DIR/log" "$DIR/staging" "$DIR/tasks"
    write_conf
    /usr/bin/glance-manage --config-file "$conf" db_sync >>"$DIR/log/glance-manage.log" 2>&1 \
        || die "glance-manage db_sync failed (see $DIR/log/glance-manage.log)"
    # setsid: its own process group, so `down` takes any child with it.
    setsid /usr/bin/python3 /usr/bin/glance-api --config-file "$conf" \
        </dev/null >>"$DIR/log/stdout.log" 2>&1 &
    echo "$!" >"$pidfile"
    local pid=$! deadline=$((SECONDS + 120))
    until [ "$(http_status "$url/v2/images?limit=1")" = "$ready_code" ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            tail -n 20 "$DIR/log/stdout.log" "$DIR/log/glance-api.log" >&2 2>/dev/null || true
            die "glance-api did not answer on $url within 120s (logs in $DIR/log)"
        fi
        sleep 0.2
    done
    echo "$url" >"$DIR/endpoint"
    echo "$CEPH_CONF" >"$DIR/ceph_conf"
    echo "$mode" >"$DIR/mode"
    cluster_fsid >"$DIR/fsid"
    touch "$DIR/ready"
}

case "$cmd" in
install)
    ensure_packages
    ;;
up)
    case "$PORT" in '' | *[!0-9]* | 0) die "PORT must be a positive integer, not '$PORT'" ;; esac
    ensure_packages
    if answers && [ "$(cat "$DIR/endpoint")" = "$url" ] \
        && [ "$(cat "$DIR/ceph_conf" 2>/dev/null)" = "$CEPH_CONF" ] \
        && [ "$(cat "$DIR/fsid" 2>/dev/null)" = "$(cluster_fsid)" ] \
        && [ "$(cat "$DIR/mode" 2>/dev/null)" = "$mode" ]; then
        log "glance in $DIR answers on $url"
    else
        stop_glance
        if port_in_use "$PORT"; then
            die "127.0.0.1:$PORT is taken by another process: pick another PORT"
        fi
        log "starting glance in $DIR on $url (images in pool $POOL of $CEPH_CONF; auth: $mode)"
        start=$SECONDS
        start_glance
        log "glance in $DIR is up ($((SECONDS - start))s)"
    fi
    echo "$url"
    ;;
down)
    stop_glance
    log "glance in $DIR is down"
    ;;
status)
    if answers; then
        cat "$DIR/endpoint"
    else
        log "no glance answers in $DIR"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 up|down|status|install [DIR] [PORT]" >&2
    exit 2
    ;;
esac
