/*
 * Unit tests of util/spawn: exit codes, signals, output capture and its cap,
 * stdin input, timeouts that kill the whole process group, no shell anywhere,
 * no inherited file descriptors, environment and working directory.
 * Must not depend on timing beyond generous timeouts.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/spawn.h"
#include "util/xalloc.h"
#include "util/banned.h"

static void test_exit_codes(void **state)
{
    SpawnResult res;
    const char *t[] = {"true", NULL};
    assert_int_equal(spawn_run(t, NULL, &res), 0);
    assert_int_equal(res.exit_status, 0);
    assert_true(spawn_result_ok(&res));
    spawn_result_release(&res);

    const char *f[] = {"false", NULL};
    assert_int_equal(spawn_run(f, NULL, &res), 0);
    assert_int_equal(res.exit_status, 1);
    assert_false(spawn_result_ok(&res));
    spawn_result_release(&res);

    const char *e42[] = {"/bin/sh", "-c", "echo oops >&2; exit 42", NULL};
    assert_int_equal(spawn_run(e42, NULL, &res), 0);
    assert_int_equal(res.exit_status, 42);
    assert_int_equal(res.term_signal, 0);
    assert_string_equal(res.err.buf, "oops\n");
    StrBuf sb = STRBUF_INIT;
    spawn_result_describe(&res, &sb);
    assert_string_equal(sb.buf, "exited with status 42: oops");
    strbuf_release(&sb);
    spawn_result_release(&res);
}

static void test_signal(void **state)
{
    SpawnResult res;
    const char *argv[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
    assert_int_equal(spawn_run(argv, NULL, &res), 0);
    assert_int_equal(res.exit_status, -1);
    assert_int_equal(res.term_signal, SIGTERM);
    assert_false(res.timed_out);
    assert_false(spawn_result_ok(&res));
    spawn_result_release(&res);
}

static void test_capture(void **state)
{
    SpawnResult res;
    const char *argv[] = {"printf", "a\\0b\\nline2", NULL};
    assert_int_equal(spawn_run(argv, NULL, &res), 0);
    assert_int_equal(res.out.len, 9);
    assert_memory_equal(res.out.buf, "a\0b\nline2", 9);
    assert_int_equal(res.err.len, 0);
    assert_false(res.out_truncated);
    spawn_result_release(&res);
}

static void test_capture_cap(void **state)
{
    /* 4 MiB on stdout, far more than a pipe holds: the child must not block,
     * only the first 1000 bytes are kept. */
    SpawnResult res;
    SpawnOptions o = {.output_max = 1000};
    const char *argv[] = {"head", "-c", "4194304", "/dev/zero", NULL};
    assert_int_equal(spawn_run(argv, &o, &res), 0);
    assert_int_equal(res.exit_status, 0);
    assert_false(res.timed_out);
    assert_int_equal(res.out.len, 1000);
    assert_true(res.out_truncated);
    assert_false(res.err_truncated);
    assert_int_equal(res.out.buf[1000], '\0');
    spawn_result_release(&res);

    /* Exactly at the cap is not truncated. */
    const char *argv2[] = {"head", "-c", "1000", "/dev/zero", NULL};
    assert_int_equal(spawn_run(argv2, &o, &res), 0);
    assert_int_equal(res.out.len, 1000);
    assert_false(res.out_truncated);
    spawn_result_release(&res);

    /* The cap applies to stderr too, independently. */
    const char *argv3[] = {"/bin/sh", "-c", "head -c 5000 /dev/zero >&2; echo ok", NULL};
    assert_int_equal(spawn_run(argv3, &o, &res), 0);
    assert_int_equal(res.err.len, 1000);
    assert_true(res.err_truncated);
    assert_string_equal(res.out.buf, "ok\n");
    assert_false(res.out_truncated);
    spawn_result_release(&res);
}

static void test_input(void **state)
{
    SpawnResult res;
    SpawnOptions o = {.input = "hello\0world", .input_len = 11};
    const char *cat[] = {"cat", NULL};
    assert_int_equal(spawn_run(cat, &o, &res), 0);
    assert_int_equal(res.out.len, 11);
    assert_memory_equal(res.out.buf, "hello\0world", 11);
    spawn_result_release(&res);

    /* Large input, more than a pipe buffer, while output is read concurrently. */
    size_t n = 3 * 1024 * 1024;
    char *big = xmalloc(n);
    memset(big, 'x', n);
    SpawnOptions ob = {.input = big, .input_len = n, .output_max = 8 * 1024 * 1024};
    assert_int_equal(spawn_run(cat, &ob, &res), 0);
    assert_int_equal(res.exit_status, 0);
    assert_int_equal(res.out.len, n);
    assert_memory_equal(res.out.buf, big, n);
    spawn_result_release(&res);

    /* A child that never reads its input: no SIGPIPE for us, no hang. */
    const char *t[] = {"true", NULL};
    assert_int_equal(spawn_run(t, &ob, &res), 0);
    assert_int_equal(res.exit_status, 0);
    spawn_result_release(&res);
    free(big);

    /* Without input, stdin is /dev/null: cat ends at once. */
    assert_int_equal(spawn_run(cat, NULL, &res), 0);
    assert_int_equal(res.exit_status, 0);
    assert_int_equal(res.out.len, 0);
    spawn_result_release(&res);
}

static void test_timeout_kills_group(void **state)
{
    SpawnResult res;
    char pidfile[] = "/tmp/hx-spawn-test-XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    /* The shell starts a grandchild in the same process group, records its
     * pid, and waits: the timeout must kill both. */
    char *script = xasprintf("sleep 60 & echo $! > %s; wait", pidfile);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    SpawnOptions o = {.timeout_ms = 300};
    assert_int_equal(spawn_run(argv, &o, &res), 0);
    assert_true(res.timed_out);
    assert_int_equal(res.term_signal, SIGKILL);
    assert_false(spawn_result_ok(&res));
    StrBuf sb = STRBUF_INIT;
    spawn_result_describe(&res, &sb);
    assert_non_null(strstr(sb.buf, "timed out"));
    strbuf_release(&sb);
    spawn_result_release(&res);
    free(script);

    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int gpid = 0;
    assert_int_equal(fscanf(f, "%d", &gpid), 1);
    fclose(f);
    unlink(pidfile);
    /* SIGKILL was sent to the group: the grandchild is dead or a zombie
     * waiting for its new parent to reap it. */
    for (int i = 0; i < 500; i++) {
        char path[64], st[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", gpid);
        FILE *s = fopen(path, "r");
        if (!s)
            break;
        size_t len = fread(st, 1, sizeof(st) - 1, s);
        fclose(s);
        st[len] = '\0';
        char *rp = strrchr(st, ')');
        if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
            break;
        assert_true(i < 499); /* still running after 5 s: not killed */
        usleep(10000);
    }
}

static void test_descendant_keeps_pipe(void **state)
{
    /* The child exits while a background grandchild still holds stdout:
     * spawn_run returns when the child ends, not when the pipe closes. */
    SpawnResult res;
    const char *argv[] = {"/bin/sh", "-c", "sleep 60 & echo $!", NULL};
    SpawnOptions o = {.timeout_ms = 20000};
    assert_int_equal(spawn_run(argv, &o, &res), 0);
    assert_false(res.timed_out);
    assert_int_equal(res.exit_status, 0);
    int gpid = atoi(res.out.buf);
    assert_true(gpid > 1);
    kill(gpid, SIGKILL);
    spawn_result_release(&res);
}

static void test_no_shell(void **state)
{
    SpawnResult res;
    /* Metacharacters reach the program untouched. */
    const char *argv[] = {"echo", "$HOME; echo hi | cat `id` *", NULL};
    assert_int_equal(spawn_run(argv, NULL, &res), 0);
    assert_string_equal(res.out.buf, "$HOME; echo hi | cat `id` *\n");
    spawn_result_release(&res);

    /* An executable text file without #! is refused, not run by /bin/sh. */
    char path[] = "/tmp/hx-spawn-noexec-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "echo ran\n", 9), 9);
    fchmod(fd, 0700);
    close(fd);
    const char *script[] = {path, NULL};
    assert_int_equal(spawn_run(script, NULL, &res), -ENOEXEC);
    spawn_result_release(&res);
    unlink(path);
}

static void test_not_found(void **state)
{
    SpawnResult res;
    const char *argv[] = {"hx-no-such-program-here", NULL};
    assert_int_equal(spawn_run(argv, NULL, &res), -ENOENT);
    spawn_result_release(&res);
    const char *abs[] = {"/nonexistent/prog", NULL};
    assert_int_equal(spawn_run(abs, NULL, &res), -ENOENT);
    spawn_result_release(&res);
    const char *dir[] = {"/tmp", NULL};
    assert_int_equal(spawn_run(dir, NULL, &res), -EACCES);
    spawn_result_release(&res);
    const char *empty[] = {NULL};
    assert_int_equal(spawn_run(empty, NULL, &res), -EINVAL);
    spawn_result_release(&res);

    errno = 0;
    assert_null(spawn_find_program("hx-no-such-program-here"));
    assert_int_equal(errno, ENOENT);
    char *sh = spawn_find_program("sh");
    assert_non_null(sh);
    assert_true(sh[0] == '/');
    free(sh);
}

static void test_no_fd_leak(void **state)
{
    int fd = open("/dev/null", O_RDONLY); /* deliberately not close-on-exec */
    assert_true(fd > 2);
    char *p = xasprintf("/proc/self/fd/%d", fd);
    SpawnResult res;
    const char *argv[] = {"readlink", p, NULL};
    assert_int_equal(spawn_run(argv, NULL, &res), 0);
    assert_int_not_equal(res.exit_status, 0);
    assert_int_equal(res.out.len, 0);
    spawn_result_release(&res);
    free(p);
    close(fd);
}

static void test_env_cwd(void **state)
{
    SpawnResult res;
    const char *envp[] = {"HX_ONE=1", "HX_TWO=two words", NULL};
    SpawnOptions o = {.envp = envp, .cwd = "/"};
    const char *env[] = {"/usr/bin/env", NULL};
    assert_int_equal(spawn_run(env, &o, &res), 0);
    assert_string_equal(res.out.buf, "HX_ONE=1\nHX_TWO=two words\n");
    spawn_result_release(&res);
    const char *pwd[] = {"/bin/pwd", NULL};
    assert_int_equal(spawn_run(pwd, &o, &res), 0);
    assert_string_equal(res.out.buf, "/\n");
    spawn_result_release(&res);
    SpawnOptions bad = {.cwd = "/nonexistent-dir"};
    assert_int_equal(spawn_run(pwd, &bad, &res), -ENOENT);
    spawn_result_release(&res);
}

static void test_signal_state_reset(void **state)
{
    /* An ignored SIGTERM in the caller must not be inherited. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGTERM, &ign, &old);
    SpawnResult res;
    const char *argv[] = {"/bin/sh", "-c", "kill -TERM $$; exit 3", NULL};
    assert_int_equal(spawn_run(argv, NULL, &res), 0);
    assert_int_equal(res.term_signal, SIGTERM);
    spawn_result_release(&res);
    sigaction(SIGTERM, &old, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_signal),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_capture_cap),
        cmocka_unit_test(test_input),
        cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_descendant_keeps_pipe),
        cmocka_unit_test(test_no_shell),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_no_fd_leak),
        cmocka_unit_test(test_env_cwd),
        cmocka_unit_test(test_signal_state_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
