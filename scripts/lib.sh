# Shared helpers for the project's scripts (sourced, not run).

log() { echo "${0##*/}: [$(date +%T)] $*" >&2; }
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
    # libssl-dev, pkg-config: the API reaches an https:// Keystone through OpenSSL.
    apt_install gcc libc6-dev libssl-dev pkg-config
}

# The real OpenStack clients the API tests drive (Debian's packages: `openstack`,
# `cinder` with its `noauth` keystoneauth plugin, and openstacksdk).
ensure_openstack_clients() {
    apt_install python3-openstackclient python3-cinderclient python3-openstacksdk
}

# PostgreSQL on 127.0.0.1:5432 with a `cinder_test` login (password cinder_test,
# CREATEDB) for the database tests: installed and started when missing.
ensure_postgres() {
    if ! port_in_use 5432; then
        apt_install postgresql
        local v
        v=$(ls /etc/postgresql | sort -V | tail -n 1)
        log "starting PostgreSQL $v"
        pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2
        for _ in $(seq 60); do port_in_use 5432 && break; sleep 0.5; done
        port_in_use 5432 || die "PostgreSQL did not start listening on 5432"
    fi
    runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cinder_test') THEN
            CREATE ROLE cinder_test LOGIN CREATEDB PASSWORD 'cinder_test';
        END IF; END \$\$;" >&2 || die "cannot create the cinder_test role in PostgreSQL"
}

# MariaDB on 127.0.0.1:3306 with a `cinder_test` user (password cinder_test, all
# privileges) for the database tests: installed and started when missing.
ensure_mariadb() {
    if ! port_in_use 3306; then
        apt_install mariadb-server
        log "starting MariaDB"
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2
        for _ in $(seq 60); do port_in_use 3306 && break; sleep 0.5; done
        port_in_use 3306 || die "MariaDB did not start listening on 3306"
    fi
    mariadb -u root -e "
        CREATE USER IF NOT EXISTS 'cinder_test'@'127.0.0.1' IDENTIFIED BY 'cinder_test';
        CREATE USER IF NOT EXISTS 'cinder_test'@'localhost' IDENTIFIED BY 'cinder_test';
        GRANT ALL PRIVILEGES ON *.* TO 'cinder_test'@'127.0.0.1';
        GRANT ALL PRIVILEGES ON *.* TO 'cinder_test'@'localhost';" >&2 \
        || die "cannot create the cinder_test user in MariaDB"
}

# RabbitMQ on 127.0.0.1:5672 (guest/guest works from localhost): installed and started
# when missing.
ensure_rabbitmq() {
    port_in_use 5672 && return 0
    apt_install rabbitmq-server
    log "starting RabbitMQ"
    rabbitmq-server -detached >&2
    for _ in $(seq 120); do port_in_use 5672 && break; sleep 0.5; done
    port_in_use 5672 || die "RabbitMQ did not start listening on 5672"
}

# The pid recorded in file $1 when that process still runs and its command line matches
# $2 (grep -i pattern): a stale pid file or a reused pid does not count.
live_pid() { # pidfile pattern
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qi -- "$2" || return 1
    echo "$pid"
}

# The HTTP status code of GET $1 (empty when nothing answers within 5 s).
http_status() { # url
    curl -s --noproxy '*' -m 5 -o /dev/null -w '%{http_code}' "$1" 2>/dev/null || true
}

# SIGKILLs process $1 and, when it leads one (started under setsid), its whole process
# group; waits up to 5 s until it is gone or a zombie.
kill_group() { # pid
    local pid=$1 state
    if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then
        kill -9 -- "-$pid" 2>/dev/null || true
    else
        kill -9 "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 50); do
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
        [ "$state" = gone ] || [ "$state" = Z ] && break
        sleep 0.1
    done
}

# Removes a service's state directory $1, refusing when it is not empty and lacks the
# file $2 that says it is ours (a mistyped DIR must not cost anyone their files).
remove_state_dir() { # dir marker
    [ -d "$1" ] || return 0
    [ -f "$2" ] || [ -z "$(ls -A "$1")" ] \
        || die "$1 is not empty and holds no ${2##*/}: not removing it"
    rm -rf "$1"
}

# Prints, for every core file under $1 (not under target/), the program it came from and
# the backtrace of the thread that died (gdb, installed when missing), then removes it.
print_core_backtraces() {
    local core exe
    for core in $(find "$1" -path "$1/target" -prune -o -type f -regex '.*/core\(\.[0-9]+\)?' -print 2>/dev/null); do
        apt_install gdb
        exe=$(gdb -batch -c "$core" 2>/dev/null | sed -n "s/^Core was generated by \`\([^ ']*\).*/\1/p")
        [ -z "$exe" ] || [ -x "$exe" ] || exe=$(command -v "$exe" || true)
        log "core file $core from ${exe:-an unknown program}; the thread that died:"
        if [ -n "$exe" ] && [ -x "$exe" ]; then
            # The libraries' load addresses turn frames without symbols (Debian ships
            # Ceph's in separate -dbgsym packages) into offsets for objdump.
            gdb -batch -nx -ex 'set pagination off' -ex 'bt 40' -ex 'info threads' \
                -ex 'info sharedlibrary' "$exe" "$core" 2>&1 \
                | grep -v '^\[New LWP' | grep -vE '^0x[0-9a-f]+ +0x[0-9a-f]+ +Yes.*/lib(c|m|gcc_s|pthread)[.-]' \
                | head -400 >&2 || true
        fi
        rm -f "$core"
    done
}
