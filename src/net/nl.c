/*
 * rtnetlink request/reply on a short-lived socket; see nl.h. A socket per
 * request costs a few microseconds and keeps callers free of shared state.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "net/nl.h"
#include "util/xalloc.h"
#include "util/banned.h"

struct nlmsghdr *net_nl_request(char *buf, int type, int flags, size_t hdr_len, void **hdr)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (uint16_t)type;
    nlh->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    /* NLM_F_DUMP shares a bit with NLM_F_EXCL: only GET requests dump. */
    bool dump = (type & 3) == 2 && (flags & NLM_F_DUMP) == NLM_F_DUMP;
    if (!dump)
        nlh->nlmsg_flags |= NLM_F_ACK;
    void *h = mnl_nlmsg_put_extra_header(nlh, hdr_len);
    if (hdr)
        *hdr = h;
    return nlh;
}

int net_nl_talk(struct nlmsghdr *req, mnl_cb_t cb, void *data)
{
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl)
        return -errno;
    int ret = 0;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        ret = -errno;
        goto out;
    }
    /* The kernel answers at once; never wait forever if it does not. */
    struct timeval tv = {.tv_sec = 10};
    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    unsigned portid = mnl_socket_get_portid(nl);
    static unsigned seq_base;
    unsigned seq = __atomic_add_fetch(&seq_base, 1, __ATOMIC_RELAXED) + (unsigned)time(NULL);
    req->nlmsg_seq = seq;
    if (mnl_socket_sendto(nl, req, req->nlmsg_len) < 0) {
        ret = -errno;
        goto out;
    }
    char *buf = xmalloc(NET_NL_BUFSIZE);
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl, buf, NET_NL_BUFSIZE);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        errno = 0;
        int r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
        if (r == MNL_CB_ERROR) {
            ret = errno ? -errno : -EIO;
            break;
        }
        if (r == MNL_CB_STOP)
            break;
    }
    free(buf);
out:
    mnl_socket_close(nl);
    return ret;
}
