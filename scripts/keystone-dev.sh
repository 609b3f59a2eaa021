#!/usr/bin/env bash
# A throwaway OpenStack Keystone (Debian's packages) on loopback, for development and tests.
#
#   scripts/keystone-dev.sh up     [DIR] [PORT]   start (or reuse) Keystone; prints its endpoint URL
#   scripts/keystone-dev.sh down   [DIR]          stop the server this script started and remove DIR
#   scripts/keystone-dev.sh status [DIR]          exit 0 and print the endpoint URL when it answers
#   scripts/keystone-dev.sh install               install the packages only
#
# The endpoint is http://127.0.0.1:PORT/v3 (PORT defaults to 35357: 5000 is left to a
# packaged keystone service, which this script never starts nor touches). Everything lives
# in DIR: keystone.conf, the SQLite database, the fernet and credential key repositories,
# the pid file and the logs (keystone.log from Keystone, uwsgi.log from the server).
# Keystone runs under uWSGI (a master and KEYSTONE_DEV_PROCESSES workers, 2 threads each).
#
# After `keystone-manage bootstrap` (user admin / KEYSTONE_DEV_ADMIN_PASSWORD, project
# admin, region RegionOne, the endpoint above) it holds the service user our API validates
# tokens with: user `cinder` (KEYSTONE_DEV_SERVICE_PASSWORD) in project `service`, domain
# Default, with role `service` there. Keystone's default policy for GET /v3/auth/tokens
# ("identity:validate_token") accepts `role:service`, so cinder needs no admin role (checked
# at the end of `up`). HEAD /v3/auth/tokens ("identity:check_token") is another matter: it
# wants admin, a system reader or the token's own user, so validate with GET.
#
# Installs python3-keystone and uWSGI from Debian's packages when missing, not the
# `keystone` package itself: that one only adds a system service (port 5000, database,
# debconf questions) which we neither need nor want started. Token lifetime in seconds:
# KEYSTONE_DEV_TOKEN_EXPIRATION (default 3600). Everything but the final URL goes to
# stderr, so `url=$(keystone-dev.sh up)` works. A second, independent Keystone is the
# same command with another DIR and PORT.
set -euo pipefail

cmd=${1:-}
DIR=${2:-${KEYSTONE_DEV_DIR:-/tmp/cinder-rs-keystone}}
PORT=${3:-${KEYSTONE_DEV_PORT:-35357}}
ADMIN_PASSWORD=${KEYSTONE_DEV_ADMIN_PASSWORD:-admin}
SERVICE_PASSWORD=${KEYSTONE_DEV_SERVICE_PASSWORD:-cinder}
TOKEN_EXPIRATION=${KEYSTONE_DEV_TOKEN_EXPIRATION:-3600}
PROCESSES=${KEYSTONE_DEV_PROCESSES:-2}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
conf="$DIR/keystone.conf"
pidfile="$DIR/keystone.pid"
url="http://127.0.0.1:$PORT/v3"
# Debian's Python, not a pyenv shim that may come first in PATH (keystone-manage and the
# uWSGI plugin use /usr/bin/python3 anyway).
PY=/usr/bin/python3

check_numbers() {
    local v
    for v in "PORT=$PORT" "KEYSTONE_DEV_TOKEN_EXPIRATION=$TOKEN_EXPIRATION" "KEYSTONE_DEV_PROCESSES=$PROCESSES"; do
        case "${v#*=}" in '' | *[!0-9]* | 0) die "${v%%=*} must be a positive integer, not '${v#*=}'" ;; esac
    done
}

ensure_packages() {
    [ -x /usr/bin/keystone-manage ] && [ -x /usr/bin/keystone-wsgi-public ] \
        && [ -x /usr/bin/uwsgi ] && [ -f /usr/lib/uwsgi/plugins/python3_plugin.so ] \
        && command -v curl >/dev/null 2>&1 && return 0
    apt_install python3-keystone uwsgi-core uwsgi-plugin-python3 curl
}

# The pid of the uWSGI master this script started in $DIR, when it still runs.
server_pid() { live_pid "$pidfile" uwsgi; }

# True when the Keystone of $DIR runs, was fully set up and answers on its recorded URL.
answers() {
    [ -f "$DIR/ready" ] && [ -f "$DIR/endpoint" ] || return 1
    server_pid >/dev/null || return 1
    [ "$(http_status "$(cat "$DIR/endpoint")")" = 200 ]
}

stop_keystone() {
    local pid
    if pid=$(server_pid); then
        log "stopping keystone (uwsgi master $pid and its workers)"
        # DIR goes away with it, so no graceful shutdown (on SIGTERM or SIGINT uWSGI takes
        # ~2 s and its workers segfault in greenlet's teardown anyway). The master leads its
        # own process group (setsid at start): SIGKILL the group, workers included.
        kill_group "$pid"
    fi
    remove_state_dir "$DIR" "$conf"
}

write_conf() {
    cat >"$conf" <<EOF
[DEFAULT]
log_dir = $DIR/log
log_file = keystone.log
debug = ${KEYSTONE_DEV_DEBUG:-false}
use_stderr = false

[database]
# check_same_thread=false: with uWSGI threads, SQLAlchemy may finalize a leaked (NullPool)
# connection from another thread, which pysqlite refuses noisily otherwise.
connection = sqlite:///$DIR/keystone.db?check_same_thread=false

[token]
provider = fernet
expiration = $TOKEN_EXPIRATION

[fernet_tokens]
key_repository = $DIR/fernet-keys

[fernet_receipts]
key_repository = $DIR/fernet-keys

[credential]
key_repository = $DIR/credential-keys

[oslo_policy]
# No such file: Keystone's built-in default policy applies.
policy_file = $DIR/policy.yaml
policy_dirs = $DIR/policy.d
EOF
}

manage() { /usr/bin/keystone-manage --config-file "$conf" "$@" >>"$DIR/log/keystone-manage.log" 2>&1 \
    || die "keystone-manage $1 failed (see $DIR/log/keystone-manage.log)"; }

# Runs "$@" in the background; its pid is appended to the array `bg_pids`.
spawn() { "$@" & bg_pids+=($!); }
# Waits for the pids in `bg_pids`; exits when one failed (it said why).
wait_bg() {
    local pid
    for pid in "${bg_pids[@]}"; do wait "$pid" || exit 1; done
    bg_pids=()
}

start_uwsgi() {
    # setsid: uWSGI leads its own process group (no terminal signals, `down` can reap it).
    # --lazy-apps: each worker loads Keystone itself. Loaded once in the master and forked,
    # the workers inherit its SQLite state and writes fail with "database is locked".
    # Connection: close: --http-socket closes each connection after its answer without
    # saying so, and clients that keep connections alive (reqwest, requests) then fail
    # their next request on the dead one; keep-alive would also pin the few threads.
    OS_KEYSTONE_CONFIG_FILES=$conf setsid /usr/bin/uwsgi \
        --plugins python3 --wsgi-file /usr/bin/keystone-wsgi-public \
        --http-socket "127.0.0.1:$PORT" --chdir "$DIR" \
        --master --processes "$PROCESSES" --threads 2 --enable-threads --lazy-apps \
        --thunder-lock --need-app --die-on-term --no-orphans \
        --buffer-size 65535 --add-header "Connection: close" --disable-logging --procname-prefix-spaced "keystone-dev:$PORT" \
        </dev/null >>"$DIR/log/uwsgi.log" 2>&1 &
    echo "$!" >"$pidfile"
}

start_keystone() {
    local user group pid bg_pids=()
    user=$(id -un)
    group=$(id -gn)
    mkdir -p "$DIR/log"
    write_conf
    # Each keystone-manage takes seconds of Python start-up: run what is independent at once.
    spawn manage db_sync
    spawn manage fernet_setup --keystone-user "$user" --keystone-group "$group"
    spawn manage credential_setup --keystone-user "$user" --keystone-group "$group"
    wait_bg
    # WAL: some of Keystone's SQLAlchemy connections outlive their request with a read
    # transaction open until the garbage collector closes them; in SQLite's default journal
    # mode that shared lock blocks every writer (token revocation then fails after 5 s with
    # "database is locked" and an empty reply). In WAL mode readers never block writers.
    # The setting is stored in the database file.
    "$PY" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' \
        "$DIR/keystone.db" || die "cannot switch $DIR/keystone.db to WAL mode"
    # The server (it needs the key repositories) loads while bootstrap fills the database.
    start_uwsgi
    pid=$(cat "$pidfile")
    # The password through the environment, not on a command line `ps` shows.
    OS_BOOTSTRAP_PASSWORD=$ADMIN_PASSWORD spawn manage bootstrap \
        --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-region-id RegionOne --bootstrap-public-url "$url" \
        --bootstrap-internal-url "$url" --bootstrap-admin-url "$url"
    wait_bg

    # Generous: on a busy 2-core machine (a cargo build beside it) each worker takes
    # 5-10 s of Python start-up.
    local deadline=$((SECONDS + 180))
    until [ "$(http_status "$url")" = 200 ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            tail -n 20 "$DIR/log/uwsgi.log" "$DIR/log/keystone.log" >&2 2>/dev/null || true
            die "keystone did not answer on $url within 180s (logs in $DIR/log)"
        fi
        sleep 0.2
    done
    echo "$url" >"$DIR/endpoint"

    create_service_user
    touch "$DIR/ready"
}

# Project `service`, role `service` and user `cinder` with that role on that project,
# through the REST API as admin; then checks that cinder can validate another token.
create_service_user() {
    KS_URL=$url KS_ADMIN_PASSWORD=$ADMIN_PASSWORD KS_SERVICE_PASSWORD=$SERVICE_PASSWORD \
        "$PY" - <<'EOF' || die "cannot create the cinder service user (logs in $DIR/log)"
import json, os, sys, urllib.error, urllib.parse, urllib.request

url = os.environ["KS_URL"]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def call(method, path, body=None, token=None, headers=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["X-Auth-Token"] = token
    h.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, headers=h, method=method)
    try:
        with opener.open(req, timeout=30) as r:
            raw = r.read()
            return r.status, r.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")
    except OSError as e:  # refused, reset, timed out, closed without a response
        sys.exit(f"{method} {path}: {e!r}")

def token(user, password, project):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    status, headers, resp = call("POST", "/auth/tokens", body)
    if status != 201:
        sys.exit(f"{user}: POST /auth/tokens -> {status} {resp}")
    return headers["X-Subject-Token"]

def ensure(kind, name, extra, admin, domain=True):
    q = {"name": name}
    if domain:
        q["domain_id"] = "default"
    status, _, resp = call("GET", f"/{kind}s?" + urllib.parse.urlencode(q), token=admin)
    if status != 200:
        sys.exit(f"GET /{kind}s -> {status} {resp}")
    if resp[kind + "s"]:
        return resp[kind + "s"][0]["id"], True
    status, _, resp = call("POST", f"/{kind}s", {kind: dict(name=name, **extra)}, token=admin)
    if status != 201:
        sys.exit(f"POST /{kind}s -> {status} {resp}")
    return resp[kind]["id"], False

admin = token("admin", os.environ["KS_ADMIN_PASSWORD"], "admin")
password = os.environ["KS_SERVICE_PASSWORD"]
project, _ = ensure("project", "service", {"domain_id": "default",
                    "description": "Service project"}, admin)
role, _ = ensure("role", "service", {}, admin, domain=False)
user, existed = ensure("user", "cinder", {"domain_id": "default", "password": password,
                       "default_project_id": project}, admin)
if existed:
    status, _, resp = call("PATCH", f"/users/{user}", {"user": {"password": password}},
                           token=admin)
    if status != 200:
        sys.exit(f"PATCH /users/{user} -> {status} {resp}")
status, _, resp = call("PUT", f"/projects/{project}/users/{user}/roles/{role}", token=admin)
if status not in (200, 201, 204):
    sys.exit(f"PUT role assignment -> {status} {resp}")

service = token("cinder", password, "service")
status, _, resp = call("GET", "/auth/tokens", token=service, headers={"X-Subject-Token": admin})
if status != 200:
    sys.exit(f"cinder cannot validate a token: GET /auth/tokens -> {status} {resp}")
EOF
}

case "$cmd" in
install)
    ensure_packages
    ;;
up)
    check_numbers
    ensure_packages
    # Reused only when it is the same Keystone: same URL and token lifetime.
    if answers && [ "$(cat "$DIR/endpoint")" = "$url" ] \
        && grep -qx "expiration = $TOKEN_EXPIRATION" "$DIR/keystone.conf" 2>/dev/null; then
        log "keystone in $DIR answers on $url"
    else
        stop_keystone
        if port_in_use "$PORT"; then
            die "127.0.0.1:$PORT is taken by another process: pick another PORT"
        fi
        log "starting keystone in $DIR on $url"
        start=$SECONDS
        start_keystone
        log "keystone in $DIR is up ($((SECONDS - start))s)"
    fi
    echo "$url"
    ;;
down)
    stop_keystone
    log "keystone in $DIR is down"
    ;;
status)
    if answers; then
        cat "$DIR/endpoint"
    else
        log "no keystone answers in $DIR"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 up|down|status|install [DIR] [PORT]" >&2
    exit 2
    ;;
esac
