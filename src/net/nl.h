/*
 * rtnetlink transport for src/net (private to this directory): one request,
 * its replies fed to a callback, the kernel's error code returned as -errno.
 * Built on libmnl. Must not know about bridges, taps or addresses: the
 * callers build the messages.
 */
#ifndef HX_NET_NL_H
#define HX_NET_NL_H

#include <libmnl/libmnl.h>
#include <stddef.h>

/* Buffer sizes: for a request built here, and for receiving (dump) replies. */
#define NET_NL_REQSIZE 4096
#define NET_NL_BUFSIZE (MNL_SOCKET_BUFFER_SIZE > 32768 ? MNL_SOCKET_BUFFER_SIZE : 32768)

/*
 * Starts a request of the given type and flags in buf (NLM_F_REQUEST and,
 * unless it is a GET with NLM_F_DUMP, NLM_F_ACK are added) and reserves a
 * family header of hdr_len bytes, zeroed, returned in *hdr.
 */
struct nlmsghdr *net_nl_request(char *buf, int type, int flags, size_t hdr_len, void **hdr);

/*
 * Sends the request on a fresh NETLINK_ROUTE socket and runs cb on every
 * reply message until the ACK or the end of the dump. Returns 0, the
 * kernel's -errno, or the callback's error (a callback returns MNL_CB_ERROR
 * after setting errno).
 */
int net_nl_talk(struct nlmsghdr *req, mnl_cb_t cb, void *data);

#endif
