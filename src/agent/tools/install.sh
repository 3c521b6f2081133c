#!/bin/sh
# Installs hyperxe-agent, the hyperxe guest agent, from the guest tools CD.
#
# Usage: install.sh [-n] [-d] [-f] [-r ROOT] [-h]
#   -n       dry run: say what would be done, change nothing
#   -d       uninstall
#   -f       install even if the installed agent is newer
#   -r ROOT  install into the system tree at ROOT (building an image):
#            files only, nothing is started
#
# The agent goes to /usr/sbin/hyperxe-agent. It is started at boot by a
# systemd unit when the guest runs systemd, by a System V init script with
# rc links when it runs sysvinit, and otherwise by a line in /etc/rc.local
# (busybox and other minimal systems). Running it again is harmless: an
# identical agent is left alone, an older one is replaced and restarted.
# POSIX sh only; needs nothing but the usual base utilities.
set -eu

PROG=hyperxe-agent
ROOT=/
DRY=0
UNINSTALL=0
FORCE=0

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0"
}

while getopts ndfr:h opt; do
    case "$opt" in
    n) DRY=1 ;;
    d) UNINSTALL=1 ;;
    f) FORCE=1 ;;
    r) ROOT=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { usage >&2; exit 2; }

case "$ROOT" in
/) R= ;;
/*) R=${ROOT%/} ;;
*) echo "install.sh: -r wants an absolute path" >&2; exit 2 ;;
esac
LIVE=0
[ -z "$R" ] && LIVE=1

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$HERE/$PROG
BIN=/usr/sbin/$PROG
UNIT=/etc/systemd/system/$PROG.service
WANTS=/etc/systemd/system/multi-user.target.wants/$PROG.service
INITD=/etc/init.d/$PROG
RCLOCAL=/etc/rc.local
HOOK="[ -x $INITD ] && $INITD start # $PROG"

say() { echo "$PROG: $*"; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

# run CMD...: runs it, or only prints it in a dry run.
run() {
    if [ $DRY = 1 ]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

# put PATH MODE: writes stdin to $R/PATH (atomically) unless it is unchanged.
put() {
    tmp=$(mktemp "${TMPDIR:-/tmp}/$PROG.XXXXXX")
    cat > "$tmp"
    if [ -f "$R$1" ] && cmp -s "$tmp" "$R$1"; then
        rm -f "$tmp"
        return 0
    fi
    if [ $DRY = 1 ]; then
        echo "would write: $R$1"
        rm -f "$tmp"
        return 0
    fi
    mkdir -p "$(dirname "$R$1")"
    cp "$tmp" "$R$1.new"
    rm -f "$tmp"
    chmod "$2" "$R$1.new"
    mv -f "$R$1.new" "$R$1"
    CHANGED=1
}

# The version an agent binary reports, or nothing.
version_of() {
    [ -x "$1" ] || return 0
    "$1" --version 2>/dev/null | sed -n "s/^$PROG //p" | head -n 1
}

# vercmp A B: prints -1, 0 or 1 comparing dotted versions numerically.
vercmp() {
    a=$1 b=$2
    while [ -n "$a" ] || [ -n "$b" ]; do
        x=${a%%.*} y=${b%%.*}
        x=${x:-0} y=${y:-0}
        case "$x$y" in *[!0-9]*) x=0 y=0 ;; esac
        if [ "$x" -lt "$y" ]; then echo -1; return; fi
        if [ "$x" -gt "$y" ]; then echo 1; return; fi
        case "$a" in *.*) a=${a#*.} ;; *) a= ;; esac
        case "$b" in *.*) b=${b#*.} ;; *) b= ;; esac
    done
    echo 0
}

# Which init system starts services in ROOT: systemd, sysv or rclocal.
init_system() {
    if [ $LIVE = 1 ] && [ -d /run/systemd/system ]; then
        echo systemd
    elif [ $LIVE = 0 ] && { [ -x "$R/lib/systemd/systemd" ] || [ -x "$R/usr/lib/systemd/systemd" ]; } &&
         [ -d "$R/etc/systemd/system" ]; then
        echo systemd
    elif [ -d "$R/etc/rc2.d" ] || [ -d "$R/etc/rc.d/rc3.d" ]; then
        echo sysv
    else
        echo rclocal
    fi
}

write_unit() {
    put "$UNIT" 0644 <<EOF
[Unit]
Description=hyperxe guest agent
Documentation=man:$PROG(8)
Conflicts=qemu-guest-agent.service

[Service]
ExecStart=$BIN
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
}

write_initd() {
    put "$INITD" 0755 <<'EOF'
#!/bin/sh
### BEGIN INIT INFO
# Provides:          hyperxe-agent
# Required-Start:    $local_fs
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: hyperxe guest agent
### END INIT INFO
# Starts and stops hyperxe-agent (installed by the hyperxe guest tools).
DAEMON=/usr/sbin/hyperxe-agent
if [ -d /run ]; then PIDFILE=/run/hyperxe-agent.pid; else PIDFILE=/var/run/hyperxe-agent.pid; fi

pid() {
    [ -r "$PIDFILE" ] || return 1
    p=$(cat "$PIDFILE" 2>/dev/null)
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
    case "$(readlink "/proc/$p/exe" 2>/dev/null)" in *hyperxe-agent*) echo "$p" ;; *) return 1 ;; esac
}

start() {
    pid > /dev/null && return 0
    [ -x "$DAEMON" ] || return 5
    "$DAEMON" --daemonize --pidfile "$PIDFILE"
}

stop() {
    p=$(pid) || { rm -f "$PIDFILE"; return 0; }
    kill "$p"
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
    rm -f "$PIDFILE"
    return 0
}

case "$1" in
start) start ;;
stop) stop ;;
restart|force-reload) stop; start ;;
status)
    if p=$(pid); then echo "hyperxe-agent is running (pid $p)"; else echo "hyperxe-agent is not running"; exit 3; fi
    ;;
*) echo "Usage: $0 {start|stop|restart|status}" >&2; exit 2 ;;
esac
EOF
}

sysv_links() {
    for l in 2 3 4 5; do
        for d in "$R/etc/rc$l.d" "$R/etc/rc.d/rc$l.d"; do
            [ -d "$d" ] && [ ! -e "$d/S20$PROG" ] && run ln -sf "../init.d/$PROG" "$d/S20$PROG" && CHANGED=1
        done
    done
    for l in 0 1 6; do
        for d in "$R/etc/rc$l.d" "$R/etc/rc.d/rc$l.d"; do
            [ -d "$d" ] && [ ! -e "$d/K01$PROG" ] && run ln -sf "../init.d/$PROG" "$d/K01$PROG" && CHANGED=1
        done
    done
    return 0
}

rclocal_hook() {
    f=$R$RCLOCAL
    if [ -f "$f" ] && grep -qF "# $PROG" "$f"; then
        return 0
    fi
    if [ $DRY = 1 ]; then
        echo "would add to $f: $HOOK"
        return 0
    fi
    if [ ! -f "$f" ]; then
        mkdir -p "$(dirname "$f")"
        printf '#!/bin/sh\n' > "$f"
    fi
    # Before a final "exit 0", if the file has one.
    if grep -q '^exit 0' "$f"; then
        tmp=$(mktemp "${TMPDIR:-/tmp}/$PROG.XXXXXX")
        awk -v hook="$HOOK" '/^exit 0/ && !done { print hook; done = 1 } { print }' "$f" > "$tmp"
        cat "$tmp" > "$f"
        rm -f "$tmp"
    else
        echo "$HOOK" >> "$f"
    fi
    chmod 0755 "$f"
    CHANGED=1
}

svc() {
    [ $LIVE = 1 ] || return 0
    case "$INIT" in
    systemd)
        run systemctl daemon-reload
        run systemctl enable "$PROG.service" > /dev/null 2>&1 || true
        run systemctl "$1" "$PROG.service"
        ;;
    *)
        run "$INITD" "$1"
        ;;
    esac
}

uninstall() {
    if [ $LIVE = 1 ]; then
        if [ -d /run/systemd/system ] && [ -f "$UNIT" ]; then
            run systemctl disable --now "$PROG.service" > /dev/null 2>&1 || true
        elif [ -x "$INITD" ]; then
            run "$INITD" stop || true
        fi
    fi
    for f in "$R$BIN" "$R$UNIT" "$R$WANTS" "$R$INITD" "$R"/etc/rc[0-6].d/[SK][0-9][0-9]"$PROG" \
             "$R"/etc/rc.d/rc[0-6].d/[SK][0-9][0-9]"$PROG"; do
        if [ -e "$f" ] || [ -L "$f" ]; then
            run rm -f "$f"
        fi
    done
    if [ -f "$R$RCLOCAL" ] && grep -qF "# $PROG" "$R$RCLOCAL"; then
        if [ $DRY = 1 ]; then
            echo "would remove the $PROG line from $R$RCLOCAL"
        else
            tmp=$(mktemp "${TMPDIR:-/tmp}/$PROG.XXXXXX")
            grep -vF "# $PROG" "$R$RCLOCAL" > "$tmp" || true
            cat "$tmp" > "$R$RCLOCAL"
            rm -f "$tmp"
        fi
    fi
    [ $LIVE = 1 ] && [ -d /run/systemd/system ] && run systemctl daemon-reload
    say "uninstalled"
}

[ "$(id -u)" = 0 ] || [ $LIVE = 0 ] || [ $DRY = 1 ] || die "run me as root"

if [ $UNINSTALL = 1 ]; then
    uninstall
    exit 0
fi

[ -f "$SRC" ] || die "$SRC is missing: run install.sh from the guest tools CD"
if [ $LIVE = 1 ]; then
    case "$(uname -m)" in
    x86_64|amd64) ;;
    *) die "this agent is built for x86_64, not $(uname -m)" ;;
    esac
fi

NEW=$(version_of "$SRC")
[ -n "$NEW" ] || die "$SRC does not run here"
OLD=$(version_of "$R$BIN")
INIT=$(init_system)
CHANGED=0

if [ -n "$OLD" ] && [ "$(vercmp "$OLD" "$NEW")" = 1 ] && [ $FORCE = 0 ]; then
    die "a newer $PROG ($OLD) is installed; use -f to install $NEW anyway"
fi

if [ -f "$R$BIN" ] && cmp -s "$SRC" "$R$BIN"; then
    BIN_CHANGED=0
else
    BIN_CHANGED=1
    if [ $DRY = 1 ]; then
        echo "would install: $R$BIN ($NEW${OLD:+, replacing $OLD})"
    else
        mkdir -p "$R/usr/sbin"
        # A new inode: a running agent keeps its old binary until restarted.
        cp "$SRC" "$R$BIN.new"
        chmod 0755 "$R$BIN.new"
        mv -f "$R$BIN.new" "$R$BIN"
    fi
fi

case "$INIT" in
systemd)
    write_unit
    if [ $LIVE = 0 ] && [ ! -L "$R$WANTS" ]; then
        run mkdir -p "$(dirname "$R$WANTS")"
        run ln -sf "$UNIT" "$R$WANTS"
        CHANGED=1
    fi
    ;;
sysv)
    write_initd
    sysv_links
    ;;
rclocal)
    write_initd
    rclocal_hook
    ;;
esac

if [ $BIN_CHANGED = 1 ] || [ $CHANGED = 1 ]; then
    svc restart
    if [ -n "$OLD" ] && [ "$OLD" != "$NEW" ]; then
        say "upgraded from $OLD to $NEW ($INIT)"
    else
        say "$NEW installed ($INIT)"
    fi
else
    svc start
    say "$NEW is already installed ($INIT)"
fi
