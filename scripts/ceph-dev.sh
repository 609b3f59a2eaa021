#!/usr/bin/env bash
# A throwaway single-node Ceph cluster on loopback, for development and tests.
#
#   scripts/ceph-dev.sh up     [DIR] [PORT]   start (or reuse) a cluster; prints its ceph.conf path
#   scripts/ceph-dev.sh down   [DIR]          stop the daemons this script started and remove DIR
#   scripts/ceph-dev.sh status [DIR]          exit 0 and print the ceph.conf path when it answers
#
# One mon, one mgr, one memstore OSD (data lives in RAM, sized by CEPH_DEV_MEMSTORE_BYTES,
# default 10 GiB: memstore only takes what is written). A second, independent cluster is
# the same command with another DIR and PORT. Installs Debian's Ceph packages when missing.
# Everything but the final ceph.conf path goes to stderr, so `conf=$(ceph-dev.sh up)` works.
set -euo pipefail

cmd=${1:-}
DIR=${2:-${CEPH_DEV_DIR:-/tmp/cinder-rs-ceph}}
PORT=${3:-${CEPH_DEV_PORT:-6789}}
MEMSTORE_BYTES=${CEPH_DEV_MEMSTORE_BYTES:-10737418240}
POOLS=${CEPH_DEV_POOLS:-rbd}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

conf="$DIR/ceph.conf"

ensure_packages() {
    local missing=()
    for bin in ceph-mon ceph-osd ceph-mgr ceph rbd monmaptool ceph-authtool; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ -f /usr/include/rbd/librbd.h ] || missing+=(librbd-dev)
    [ -f /usr/include/rados/librados.h ] || missing+=(librados-dev)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install Ceph from Debian's packages"
    log "installing Ceph from Debian's packages (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends \
        ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev >&2
}

# Pids of the daemons of the cluster in $DIR, one per line (only live ones).
daemon_pids() {
    local f pid
    for f in "$DIR"/run/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
    done
    return 0
}

answers() {
    [ -f "$conf" ] || return 1
    [ "$(daemon_pids | wc -l)" -ge 3 ] || return 1
    timeout 10 ceph -c "$conf" osd stat --format json 2>/dev/null | grep -q '"num_up_osds":1'
}

stop_cluster() {
    local pids
    pids=$(daemon_pids)
    if [ -n "$pids" ]; then
        log "stopping daemons $(echo $pids)"
        kill $pids 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(daemon_pids)" ] && break
            sleep 0.1
        done
        pids=$(daemon_pids)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    fi
    rm -rf "$DIR"
}

write_conf() {
    local fsid=$1
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v1:127.0.0.1:$PORT]
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr2 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
run dir = $DIR/run
admin socket = $DIR/run/\$cluster-\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
osd crush chooseleaf type = 0
mon max pg per osd = 1000
rbd default clone format = 2
keyring = $DIR/ceph.client.admin.keyring

[client]
# librados cannot take these after connect (see etc/ceph.conf.sample): keep them here.
rados mon op timeout = 30
rados osd op timeout = 60
client mount timeout = 15
log file = $DIR/log/client.\$pid.log
admin socket =

[mon.a]
mon data = $DIR/mon.a
keyring = $DIR/keyring.mon
mon cluster log file = $DIR/log/cluster.log

[mgr.x]
mgr data = $DIR/mgr.x
keyring = $DIR/mgr.x/keyring

[osd.0]
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd data = $DIR/osd.0
keyring = $DIR/osd.0/keyring
osd journal size = 0
osd max object name len = 256
osd max object namespace len = 64
EOF
}

wait_for() { # seconds description command...
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$what did not come up within ${secs}s (logs in $DIR/log)"
        sleep 0.2
    done
}

start_cluster() {
    local fsid ceph osd_uuid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    mkdir -p "$DIR"/{run,log,crash,mgr.x,osd.0}
    write_conf "$fsid"
    ceph="ceph -c $conf"

    ceph-authtool --create-keyring "$DIR/keyring.mon" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$DIR/keyring.mon" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
    monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$PORT]" "$DIR/monmap" >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring.mon"
    ceph-mon -c "$conf" -i a
    wait_for 30 "the mon" timeout 5 $ceph mon stat

    $ceph auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
        -o "$DIR/mgr.x/keyring" >/dev/null
    ceph-mgr -c "$conf" -i x

    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    $ceph osd new "$osd_uuid" >/dev/null
    ceph-osd -c "$conf" -i 0 --no-mon-config --mkfs --mkkey --osd-uuid "$osd_uuid" >/dev/null 2>&1 \
        || die "ceph-osd --mkfs failed (logs in $DIR/log)"
    $ceph auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
        -i "$DIR/osd.0/keyring" >/dev/null 2>&1
    ceph-osd -c "$conf" -i 0
    wait_for 60 "the OSD" answers

    $ceph osd set-require-min-compat-client mimic >/dev/null 2>&1
    local pool
    for pool in $POOLS; do
        $ceph osd pool create "$pool" 8 8 >/dev/null 2>&1
        rbd -c "$conf" pool init "$pool"
    done
    # The mgr's rbd_support module serves `rbd task add ...`; wait until it answers.
    wait_for 60 "the mgr (rbd_support)" timeout 10 $ceph rbd task list
}

case "$cmd" in
up)
    ensure_packages
    if answers; then
        log "cluster in $DIR is up"
    else
        stop_cluster
        if port_in_use "$PORT"; then
            die "127.0.0.1:$PORT is taken by another process: pick another PORT for a second cluster"
        fi
        log "starting a cluster in $DIR on 127.0.0.1:$PORT"
        start_cluster
        log "cluster in $DIR is up"
    fi
    echo "$conf"
    ;;
down)
    stop_cluster
    log "cluster in $DIR is down"
    ;;
status)
    if answers; then
        echo "$conf"
    else
        log "no cluster answers in $DIR"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 up|down|status [DIR] [PORT]" >&2
    exit 2
    ;;
esac
