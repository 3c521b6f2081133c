/*
 * A scripted fake QMP monitor for the transport tests. It plays the server
 * side of a transcript file over one end of a socketpair, on its own thread:
 *
 *   < TEXT       send TEXT and a newline ($ID = id of the last command read)
 *   <raw TEXT    send TEXT as is (\n, \r escapes), to split a line across writes
 *   > NAME       read one command; it must be NAME ("> NAME +fd": with an fd attached)
 *   ! close      close the connection
 *   ! pause MS   sleep
 *   ! big N      send a line of N bytes
 *   ! wait-eof   read until the client closes
 *   # ...        comment
 *
 * fake_monitor_finish() joins the thread and returns NULL if the whole script
 * ran as written, else a message. Test code only.
 */
#ifndef HX_TESTS_FAKE_MONITOR_H
#define HX_TESTS_FAKE_MONITOR_H

/* not every test uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/strbuf.h"
#include "util/xalloc.h"

typedef struct FakeMonitor {
    int fd;
    char **lines;
    size_t n_lines;
    pthread_t thread;
    char *failure;
    long long last_id;
    int fds_received;
    char rbuf[1 << 16];
    size_t rlen;
} FakeMonitor;

static char **fake_read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **v = NULL;
    size_t k = 0, alloc = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n'))
            line[--len] = '\0';
        XGROW(v, k + 1, alloc);
        v[k++] = xstrdup(line);
    }
    free(line);
    fclose(f);
    *n = k;
    return v;
}

static void fake_send(FakeMonitor *fm, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fm->fd, s, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            if (errno == EAGAIN) {
                struct pollfd p = {.fd = fm->fd, .events = POLLOUT};
                poll(&p, 1, 1000);
                continue;
            }
            return; /* the client went away: the script will notice */
        }
        s += w;
        len -= (size_t)w;
    }
}

/* Expands $ID and the escapes \n, \r. */
static char *fake_expand(FakeMonitor *fm, const char *in, bool escapes)
{
    StrBuf sb = STRBUF_INIT;
    for (const char *p = in; *p; p++) {
        if (strncmp(p, "$ID", 3) == 0) {
            strbuf_addf(&sb, "%lld", fm->last_id);
            p += 2;
        } else if (escapes && p[0] == '\\' && p[1] == 'n') {
            strbuf_addch(&sb, '\n');
            p++;
        } else if (escapes && p[0] == '\\' && p[1] == 'r') {
            strbuf_addch(&sb, '\r');
            p++;
        } else {
            strbuf_addch(&sb, *p);
        }
    }
    return strbuf_detach(&sb, NULL);
}

/* Reads one line from the client (5 s at most); counts received fds. */
static char *fake_recv_line(FakeMonitor *fm)
{
    for (;;) {
        char *nl = memchr(fm->rbuf, '\n', fm->rlen);
        if (nl) {
            size_t n = (size_t)(nl - fm->rbuf);
            char *line = xstrndup(fm->rbuf, n);
            memmove(fm->rbuf, nl + 1, fm->rlen - n - 1);
            fm->rlen -= n + 1;
            return line;
        }
        struct pollfd p = {.fd = fm->fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return NULL;
        char cbuf[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec iov = {.iov_base = fm->rbuf + fm->rlen, .iov_len = sizeof(fm->rbuf) - fm->rlen};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf)};
        ssize_t n = recvmsg(fm->fd, &msg, MSG_CMSG_CLOEXEC);
        if (n <= 0)
            return NULL;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int fd;
                memcpy(&fd, CMSG_DATA(c), sizeof(fd));
                fm->fds_received++;
                close(fd);
            }
        }
        fm->rlen += (size_t)n;
    }
}

static void *fake_main(void *arg)
{
    FakeMonitor *fm = arg;
    for (size_t i = 0; i < fm->n_lines && !fm->failure; i++) {
        const char *l = fm->lines[i];
        if (l[0] == '#' || l[0] == '\0')
            continue;
        if (strncmp(l, "<raw ", 5) == 0) {
            char *s = fake_expand(fm, l + 5, true);
            fake_send(fm, s, strlen(s));
            free(s);
        } else if (l[0] == '<') {
            char *s = fake_expand(fm, l[1] == ' ' ? l + 2 : l + 1, false);
            fake_send(fm, s, strlen(s));
            fake_send(fm, "\n", 1);
            free(s);
        } else if (l[0] == '>') {
            char name[128] = "";
            bool want_fd = strstr(l, "+fd") != NULL;
            sscanf(l + 1, " %127s", name);
            int before = fm->fds_received;
            char *got = fake_recv_line(fm);
            if (!got) {
                fm->failure = xasprintf("line %zu: expected %s, the client sent nothing", i + 1,
                                        name);
                break;
            }
            struct json_object *o = json_tokener_parse(got);
            struct json_object *ex = NULL, *id = NULL;
            if (!o || !json_object_object_get_ex(o, "execute", &ex) ||
                strcmp(json_object_get_string(ex), name) != 0) {
                fm->failure = xasprintf("line %zu: expected %s, got %s", i + 1, name, got);
            } else if (json_object_object_get_ex(o, "id", &id)) {
                fm->last_id = json_object_get_int64(id);
            }
            if (!fm->failure && want_fd && fm->fds_received == before)
                fm->failure = xasprintf("line %zu: %s came without a file descriptor", i + 1,
                                        name);
            json_object_put(o);
            free(got);
        } else if (strcmp(l, "! close") == 0) {
            shutdown(fm->fd, SHUT_RDWR);
        } else if (strncmp(l, "! pause ", 8) == 0) {
            struct timespec ts = {0, atol(l + 8) * 1000000L};
            nanosleep(&ts, NULL);
        } else if (strncmp(l, "! big ", 6) == 0) {
            size_t n = (size_t)atol(l + 6);
            char *big = xmalloc(n + 1);
            memset(big, 'x', n);
            big[0] = '{';
            big[n] = '\n';
            fake_send(fm, big, n + 1);
            free(big);
        } else if (strcmp(l, "! wait-eof") == 0) {
            char buf[4096];
            for (;;) {
                struct pollfd p = {.fd = fm->fd, .events = POLLIN};
                if (poll(&p, 1, 10000) <= 0) {
                    fm->failure = xasprintf("line %zu: the client never closed", i + 1);
                    break;
                }
                ssize_t n = read(fm->fd, buf, sizeof(buf));
                if (n <= 0)
                    break;
            }
        } else {
            fm->failure = xasprintf("line %zu: bad script line %s", i + 1, l);
        }
    }
    return NULL;
}

/* Starts the fake on a new socketpair; *client_fd gets the client end. */
static FakeMonitor *fake_monitor_start(const char *script, int *client_fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return NULL;
    FakeMonitor *fm = xnew0(FakeMonitor, 1);
    fm->lines = fake_read_lines(script, &fm->n_lines);
    if (!fm->lines)
        fm->failure = xasprintf("cannot read %s", script);
    fm->fd = sv[0];
    *client_fd = sv[1];
    pthread_create(&fm->thread, NULL, fake_main, fm);
    return fm;
}

static char *fake_monitor_finish(FakeMonitor *fm)
{
    pthread_join(fm->thread, NULL);
    close(fm->fd);
    for (size_t i = 0; i < fm->n_lines; i++)
        free(fm->lines[i]);
    free(fm->lines);
    char *f = fm->failure;
    free(fm);
    return f;
}

#endif
