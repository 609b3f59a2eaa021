# Shared helpers for the project's scripts (sourced, not run).

log() { echo "${0##*/}: $*" >&2; }
die() { log "error: $*"; exit 1; }

# True when something listens on 127.0.0.1/0.0.0.0 TCP port $1 (no ss/netstat needed).
port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    grep -qE "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:[0-9A-F]+ 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Installs Debian packages that are missing (needs root).
apt_install() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root (or install them)"
    log "installing ${missing[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The Rust toolchain must be there already: only package registries are reachable, and
# Debian's own rustc is older than the workspace's rust-version.
ensure_rust() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust >= 1.94 (rustup) first"
    local v
    v=$(rustc --version | awk '{print $2}')
    case "$v" in
        1.9[4-9]* | 1.[1-9][0-9][0-9]* | [2-9].*) ;;
        *) die "rustc $v is older than the workspace's rust-version 1.94" ;;
    esac
}

# Build dependencies of the workspace: a C compiler (rbd-sys layout test) and Ceph's
# client libraries (installed with the cluster by ceph-dev.sh).
ensure_build_deps() {
    ensure_rust
    apt_install gcc libc6-dev
}
