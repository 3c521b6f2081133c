#!/bin/sh
# Mount and Unmount buttons of the demo page: POST dev=NAME&action=mount
# mounts /dev/NAME on /mnt/NAME; action=umount unmounts it. Accepts only
# the name of a block device that exists, and unmounts only under /mnt.
# Answers with a redirect to the page, or a page saying what went wrong.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

fail() {
    printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
    echo "<!DOCTYPE html><html><head><meta charset=utf-8><title>Demonstration Linux Virtual Machine</title></head>"
    echo "<body style='font-family: sans-serif; margin: 2em'><h1>Demonstration Linux Virtual Machine</h1>"
    echo "<p>$1</p><p><a href=/>Back to the disk list</a></p></body></html>"
    exit 0
}

body=
if [ "$REQUEST_METHOD" = POST ] && [ -n "$CONTENT_LENGTH" ] && [ "$CONTENT_LENGTH" -le 1024 ] 2>/dev/null; then
    body=$(head -c "$CONTENT_LENGTH")
fi
[ -n "$body" ] || body=$QUERY_STRING
field() { printf '%s\n' "$body" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1; }
dev=$(field dev)
action=$(field action)

case "$dev" in
'' | *[!a-z0-9]*) fail "No such disk." ;;
esac
[ -e "/sys/class/block/$dev" ] || fail "No such disk: /dev/$dev."

case "$action" in
mount)
    if awk -v d="/dev/$dev" '$1 == d { found = 1 } END { exit !found }' /proc/mounts; then
        fail "/dev/$dev is already mounted."
    fi
    mkdir -p "/mnt/$dev"
    if ! out=$(mount "/dev/$dev" "/mnt/$dev" 2>&1); then
        rmdir "/mnt/$dev" 2>/dev/null
        fail "Mounting /dev/$dev failed: $(printf '%s' "$out" | sed 's/&/\&amp;/g; s/</\&lt;/g')"
    fi
    ;;
umount)
    awk -v m="/mnt/$dev" '$2 == m { found = 1 } END { exit !found }' /proc/mounts ||
        fail "/dev/$dev is not mounted on /mnt/$dev."
    out=$(umount "/mnt/$dev" 2>&1) ||
        fail "Unmounting /mnt/$dev failed: $(printf '%s' "$out" | sed 's/&/\&amp;/g; s/</\&lt;/g')"
    rmdir "/mnt/$dev" 2>/dev/null
    ;;
*) fail "Unknown action." ;;
esac

printf 'HTTP/1.0 303 See Other\r\nLocation: /\r\nContent-Type: text/plain\r\n\r\nDone.\n'
