/*
 * guest-shutdown: asks the guest's own init system to power off, reboot or
 * halt (systemd, then sysvinit's shutdown, then the busybox applets that
 * signal init), falling back to sync + reboot(2) only when none of them
 * could be run. The request is checked at once (errors are replied); the
 * action starts after the reply queue is flushed, in a child process, so
 * the agent keeps answering until init stops it. As with QEMU's agent,
 * success sends no reply. In --stdio mode only --power-cmd is run.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/cmd.h"
#include "util/log.h"

#include "util/banned.h"

static const char *const cmd_power_names[AGENT_POWER__MAX] = {
    [AGENT_POWER_NONE] = "none",
    [AGENT_POWER_POWERDOWN] = "powerdown",
    [AGENT_POWER_REBOOT] = "reboot",
    [AGENT_POWER_HALT] = "halt",
};

CMD_HANDLER(cmd_power_shutdown)
{
    const char *mode = qga_arg_str(args, "mode");
    AgentPower p = AGENT_POWER_NONE;
    if (!mode || STREQ(mode, "powerdown"))
        p = AGENT_POWER_POWERDOWN;
    else if (STREQ(mode, "reboot"))
        p = AGENT_POWER_REBOOT;
    else if (STREQ(mode, "halt"))
        p = AGENT_POWER_HALT;
    else
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "mode is invalid (valid values are: halt|powerdown|reboot");
    if (ag->stdio && !ag->power_cmd)
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "guest-shutdown is refused in --stdio mode without --power-cmd");
    ag->pending_power = p;
    return true;
}

/* Runs argv and waits; true if it exited with status 0. */
static bool cmd_power_run(const char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool cmd_power_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The child that carries the request out; never returns. */
static void cmd_power_child(const Agent *ag, AgentPower p)
{
    const char *mode = cmd_power_names[p];
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();

    if (ag->power_cmd) {
        const char *argv[] = {ag->power_cmd, mode, NULL};
        _exit(cmd_power_run(argv) ? 0 : 1);
    }
    if (cmd_power_exists("/run/systemd/system")) {
        static const char *const sd[AGENT_POWER__MAX] = {NULL, "poweroff", "reboot", "halt"};
        const char *argv[] = {"systemctl", sd[p], NULL};
        if (cmd_power_run(argv))
            _exit(0);
    }
    if (cmd_power_exists("/sbin/shutdown") || cmd_power_exists("/usr/sbin/shutdown")) {
        const char *argv[] = {"shutdown", "-h", "-P", "+0", "hypervisor initiated shutdown", NULL};
        if (p == AGENT_POWER_REBOOT)
            argv[1] = "-r", argv[2] = "+0", argv[3] = "hypervisor initiated shutdown",
            argv[4] = NULL;
        else if (p == AGENT_POWER_HALT)
            argv[2] = "-H";
        if (cmd_power_run(argv))
            _exit(0);
    }
    {
        /* busybox (or util-linux) applets: they signal init. */
        static const char *const bb[AGENT_POWER__MAX] = {NULL, "poweroff", "reboot", "halt"};
        const char *argv[] = {bb[p], NULL};
        if (cmd_power_run(argv))
            _exit(0);
    }
    sync();
    static const int how[AGENT_POWER__MAX] = {0, RB_POWER_OFF, RB_AUTOBOOT, RB_HALT_SYSTEM};
    reboot(how[p]);
    _exit(1);
}

void cmd_power_act(Agent *ag)
{
    AgentPower p = ag->pending_power;
    if (p == AGENT_POWER_NONE)
        return;
    ag->pending_power = AGENT_POWER_NONE;
    log_info("guest-shutdown: %s", cmd_power_names[p]);
    pid_t pid = fork();
    if (pid < 0)
        log_error("guest-shutdown: cannot fork: %s", strerror(errno));
    else if (pid == 0)
        cmd_power_child(ag, p);
}
