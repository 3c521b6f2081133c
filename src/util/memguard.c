/*
 * SIGBUS on mapped reads as an error return. See memguard.h.
 *
 * The handler finds the thread's jump buffer in thread-local storage and
 * jumps back into memguard_run(), which returns -EFAULT. Jumping out of a
 * handler for a synchronous fault is safe here because the guarded function
 * only reads memory: nothing it holds is left half-changed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "util/memguard.h"
#include "util/banned.h"

static __thread sigjmp_buf *guard_env;
static struct sigaction prev_action;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    sigjmp_buf *env = guard_env;
    if (env) {
        guard_env = NULL;
        siglongjmp(*env, 1);
    }
    /* Not a guarded read: what would have happened without us. */
    if ((prev_action.sa_flags & SA_SIGINFO) && prev_action.sa_sigaction) {
        prev_action.sa_sigaction(sig, info, uctx);
        return;
    }
    if (!(prev_action.sa_flags & SA_SIGINFO) && prev_action.sa_handler != SIG_DFL &&
        prev_action.sa_handler != SIG_IGN) {
        prev_action.sa_handler(sig);
        return;
    }
    signal(SIGBUS, SIG_DFL);
    /* A fault repeats when the handler returns, now with the default effect;
     * a SIGBUS sent by someone is raised again. */
    if (info && info->si_code <= 0)
        raise(SIGBUS);
}

/* Makes on_sigbus the handler, keeping the one it replaces (a library, a
 * test harness) for the faults that are not ours. Checked on every run:
 * someone may have installed theirs since. */
static void install(void)
{
    struct sigaction cur;
    if (sigaction(SIGBUS, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_sigbus)
        return;
    pthread_mutex_lock(&install_lock);
    struct sigaction sa, prev;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &prev) == 0 &&
        !((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction == on_sigbus))
        prev_action = prev;
    pthread_mutex_unlock(&install_lock);
}

int memguard_run(void (*fn)(void *arg), void *arg)
{
    install();
    /* A fault while SIGBUS is blocked kills the process whatever the
     * handler: threads that block every signal (workers) unblock it here. */
    sigset_t bus, old;
    sigemptyset(&bus);
    sigaddset(&bus, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &bus, &old);
    sigjmp_buf env;
    sigjmp_buf *volatile outer = guard_env;
    int r = 0;
    /* The mask is put back below, on both paths: sigsetjmp need not save it. */
    if (sigsetjmp(env, 0)) {
        r = -EFAULT;
    } else {
        guard_env = &env;
        fn(arg);
    }
    guard_env = outer;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}
