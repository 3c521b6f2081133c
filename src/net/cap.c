/*
 * Can this process give VMs bridged tap networking? It needs CAP_NET_ADMIN
 * (in the user namespace owning its network namespace), /dev/net/tun and
 * rtnetlink. If not, the reason is one line the VIF layer stores and shows,
 * and VMs fall back to QEMU user-mode networking. Never changes anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/netlink.h>

#include "net/net.h"
#include "util/banned.h"

static int net_cap_has_net_admin(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    return (data[CAP_NET_ADMIN / 32].effective >> (CAP_NET_ADMIN % 32)) & 1;
}

void net_cap_check(NetCap *cap)
{
    memset(cap, 0, sizeof(*cap));
    int admin = net_cap_has_net_admin();
    if (admin <= 0) {
        if (admin < 0)
            snprintf(cap->reason, sizeof(cap->reason),
                     "cannot read the daemon's capabilities (%s); using QEMU user-mode "
                     "networking",
                     strerror(-admin));
        else
            snprintf(cap->reason, sizeof(cap->reason),
                     "the daemon runs without CAP_NET_ADMIN (uid %u), so it cannot create bridges "
                     "and taps; using QEMU user-mode networking (run hyperxed as root for "
                     "bridged networks)",
                     (unsigned)geteuid());
        return;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(cap->reason, sizeof(cap->reason),
                 "cannot open /dev/net/tun (%s), so taps cannot be created; using QEMU "
                 "user-mode networking (load the tun module or create the device node)",
                 strerror(errno));
        return;
    }
    close(fd);
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) {
        snprintf(cap->reason, sizeof(cap->reason),
                 "cannot open a rtnetlink socket (%s); using QEMU user-mode networking",
                 strerror(errno));
        return;
    }
    close(s);
    cap->bridges = true;
}
