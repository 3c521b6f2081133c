#!/bin/sh
# The "Demonstration Linux Virtual Machine" page (busybox httpd serves it for
# "/"): the VM's name and address, and every disk with its partitions, size,
# filesystem, mount point and usage. A volume with a filesystem that is not
# mounted gets a Mount button (mount.cgi). Read-only: changes nothing.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

esc() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }

# human BYTES: 1.5 GiB style.
human() {
    awk -v b="$1" 'BEGIN {
        split("B KiB MiB GiB TiB", u, " "); i = 1
        while (b >= 1024 && i < 5) { b /= 1024; i++ }
        printf(i == 1 ? "%d %s" : "%.1f %s", b, u[i]) }'
}

# Mount point and type of /dev/$1 (first match in /proc/mounts).
mount_of() {
    awk -v d="/dev/$1" '$1 == d { print $2, $3; exit }' /proc/mounts
}

fstype_of() {
    blkid -o value -s TYPE "/dev/$1" 2>/dev/null
}

volume_row() {
    dev=$1
    size=$(($(cat "/sys/class/block/$dev/size") * 512))
    set -- $(mount_of "$dev")
    mnt=$1 type=$2
    [ -n "$type" ] || type=$(fstype_of "$dev")
    echo "<tr><td class=dev>/dev/$dev</td><td class=num>$(human "$size")</td>"
    echo "<td>${type:-<span class=none>none</span>}</td>"
    if [ -n "$mnt" ]; then
        # Octal escapes of /proc/mounts (\040 for a space) back to characters.
        mnt=$(printf '%b' "$mnt")
        set -- $(df -P -k "$mnt" | awk 'NR == 2 { print $2, $3, $4, $5 }')
        pct=${4%\%}
        echo "<td class=mnt>$(printf '%s' "$mnt" | esc)</td>"
        echo "<td class=num>$(human $(($2 * 1024))) of $(human $(($1 * 1024)))</td>"
        echo "<td class=num>$(human $(($3 * 1024)))</td>"
        echo "<td><div class=bar><div style=\"width:${pct:-0}%\"></div></div> ${pct:-0}%</td>"
        case "$mnt" in
        /mnt/*)
            echo "<td><form method=post action=/cgi-bin/mount.cgi><input type=hidden name=dev value=$dev>"
            echo "<input type=hidden name=action value=umount><button>Unmount</button></form></td>" ;;
        *) echo "<td></td>" ;;
        esac
    elif [ -n "$type" ] && [ "$type" != swap ]; then
        echo "<td class=none>not mounted</td><td></td><td></td><td></td>"
        echo "<td><form method=post action=/cgi-bin/mount.cgi><input type=hidden name=dev value=$dev>"
        echo "<input type=hidden name=action value=mount><button>Mount</button></form></td>"
    else
        echo "<td class=none colspan=4>no filesystem: format it from the console,"
        echo "e.g. <code>mkfs.ext4 /dev/$dev</code></td><td></td>"
    fi
    echo "</tr>"
}

nic=$(cat /run/hxdemo/nic 2>/dev/null)
addr=$(ip -4 -o addr show dev "${nic:-eth0}" 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
mem=$(awk '/^MemTotal:/ { print $2 * 1024 }' /proc/meminfo)

printf 'Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n'
cat <<HTML
<!DOCTYPE html>
<html lang=en><head><meta charset=utf-8>
<title>Demonstration Linux Virtual Machine</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 64em; color: #222; }
h1 { font-size: 1.6em; border-bottom: 3px solid #2a6ebb; padding-bottom: .3em; }
h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35em .7em; border-bottom: 1px solid #ddd; }
th { background: #f0f4f8; }
td.num { text-align: right; white-space: nowrap; }
td.dev, td.mnt { font-family: monospace; }
.none { color: #888; }
tr.disk td { background: #fafafa; font-weight: bold; }
.bar { display: inline-block; width: 6em; height: .7em; background: #e3e3e3; vertical-align: middle; }
.bar div { height: 100%; background: #2a6ebb; }
dl { display: grid; grid-template-columns: max-content auto; gap: .3em 1.5em; }
dt { font-weight: bold; }
dd { margin: 0; }
footer { margin-top: 2em; font-size: .85em; color: #777; }
</style></head><body>
<h1>Demonstration Linux Virtual Machine</h1>
<dl>
<dt>Host name</dt><dd>$(hostname | esc)</dd>
<dt>IP address</dt><dd>${addr:-none}</dd>
<dt>Kernel</dt><dd>$(uname -r | esc)</dd>
<dt>Memory</dt><dd>$(human "$mem")</dd>
<dt>Up since</dt><dd>$(awk '{ printf("%d min", $1 / 60) }' /proc/uptime) ago</dd>
</dl>
<h2>Disks</h2>
<table>
<tr><th>Device</th><th>Size</th><th>Filesystem</th><th>Mounted on</th><th>Used</th>
<th>Free</th><th>Usage</th><th></th></tr>
HTML

for d in /sys/block/*; do
    disk=$(basename "$d")
    case "$disk" in loop*|ram*|sr*|fd*|zram*|nbd*) continue ;; esac
    parts=
    for p in "$d/$disk"*; do
        [ -e "$p/partition" ] && parts="$parts $(basename "$p")"
    done
    size=$(($(cat "$d/size") * 512))
    if [ -n "$parts" ]; then
        set -- $parts
        echo "<tr class=disk><td class=dev>/dev/$disk</td><td class=num>$(human "$size")</td>"
        echo "<td colspan=6>disk, $# partition$([ $# -gt 1 ] && echo s)</td></tr>"
        for p in $parts; do volume_row "$p"; done
    else
        volume_row "$disk"
    fi
done

cat <<HTML
</table>
<footer>hyperxe Demo Linux &middot; add a disk with <code>xe vm-disk-add</code>, format it
from the console (<code>mkfs.ext4 /dev/vdb</code>), reload this page and press Mount.</footer>
</body></html>
HTML
