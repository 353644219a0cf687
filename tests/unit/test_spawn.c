/* child_spawn and its keeper: what the child gets (signals, environment,
 * descriptors, session), how its end is reported, and how it is stopped.
 * The children are small shell commands. */
#include "helpers.h"

#include "plugin/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct run {
  struct child c;
  char out[8192];
  size_t out_len;
  char err[8192];
  size_t err_len;
  bool out_eof, err_eof;
};

/* The parent's signal state, saved by setup and restored by teardown, so a
 * test that changes it does not leak into the next. */
struct saved_signals {
  struct sigaction chld, pipe, usr1, rt5;
  sigset_t mask;
};

static int setup(void **state) {
  struct saved_signals *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -1;
  sigaction(SIGCHLD, NULL, &s->chld);
  sigaction(SIGPIPE, NULL, &s->pipe);
  sigaction(SIGUSR1, NULL, &s->usr1);
  sigaction(SIGRTMIN + 5, NULL, &s->rt5);
  pthread_sigmask(SIG_SETMASK, NULL, &s->mask);
  *state = s;
  return 0;
}

static int teardown(void **state) {
  struct saved_signals *s = *state;
  sigaction(SIGCHLD, &s->chld, NULL);
  sigaction(SIGPIPE, &s->pipe, NULL);
  sigaction(SIGUSR1, &s->usr1, NULL);
  sigaction(SIGRTMIN + 5, &s->rt5, NULL);
  pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
  free(s);
  return 0;
}

/* As collectd does: SIGCHLD and SIGPIPE ignored. */
static void ignore_like_collectd(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigaction(SIGCHLD, &sa, NULL);
  sigaction(SIGPIPE, &sa, NULL);
}

static void read_into(int fd, char *buf, size_t size, size_t *len, bool *eof) {
  for (;;) {
    ssize_t n = read(fd, buf + *len, size - 1 - *len);
    if (n > 0) {
      *len += (size_t)n;
      buf[*len] = '\0';
      if (*len == size - 1)
        fail_msg("child wrote more than %zu bytes", size - 1);
      continue;
    }
    if (n == 0)
      *eof = true;
    else if (errno != EAGAIN && errno != EINTR)
      fail_msg("read: %s", strerror(errno));
    return;
  }
}

/* Reads the child's output and the keeper's reports for up to timeout_ms;
 * returns when `until' says so. */
static bool pump(struct run *r, bool (*until)(struct run *), unsigned ms) {
  uint64_t end = now_ms() + ms;
  while (!until(r)) {
    uint64_t now = now_ms();
    if (now >= end)
      return false;
    struct pollfd p[3] = {
        {.fd = r->out_eof ? -1 : r->c.out_fd, .events = POLLIN},
        {.fd = r->err_eof ? -1 : r->c.err_fd, .events = POLLIN},
        {.fd = r->c.status_fd, .events = POLLIN},
    };
    poll(p, 3, (int)(end - now < 100 ? end - now : 100));
    if (p[0].revents)
      read_into(r->c.out_fd, r->out, sizeof(r->out), &r->out_len, &r->out_eof);
    if (p[1].revents)
      read_into(r->c.err_fd, r->err, sizeof(r->err), &r->err_len, &r->err_eof);
    if (p[2].revents)
      child_read_status(&r->c);
  }
  return true;
}

static bool ended(struct run *r) {
  return r->c.exited && r->out_eof && r->err_eof;
}
static bool exited(struct run *r) { return r->c.exited; }
static bool pid_known(struct run *r) { return r->c.pid > 0; }
static bool said_ready(struct run *r) {
  return strstr(r->out, "ready\n") != NULL;
}

static void start(struct run *r, const char *path, char *const argv[],
                  char *const envp[]) {
  memset(r, 0, sizeof(*r));
  int rc = child_spawn(&r->c, path, argv, envp);
  if (rc != 0)
    fail_msg("child_spawn %s: %s", path, strerror(-rc));
  assert_true(r->c.keeper > 0);
}

/* Waits for the keeper process itself (our child) unless the kernel reaped
 * it already (SIGCHLD ignored); returns false if it is still there. */
static bool reap_keeper(pid_t keeper) {
  uint64_t end = now_ms() + WAIT_MS;
  while (now_ms() < end) {
    pid_t p = waitpid(keeper, NULL, WNOHANG);
    if (p == keeper || (p < 0 && errno == ECHILD))
      return true;
    sleep_ms(10);
  }
  return false;
}

/* Closes the child; once it has ended, its keeper must be gone too, not
 * left behind as a zombie. */
static void finish(struct run *r) {
  pid_t keeper = r->c.keeper;
  bool exited = r->c.exited;
  child_close(&r->c);
  if (exited)
    assert_true(pid_wait_vanished(keeper, WAIT_MS));
  else
    assert_true(reap_keeper(keeper));
}

/* Runs a shell command to its end and collects what it printed. */
static void run_sh(struct run *r, const char *script, char *const envp[]) {
  char *const argv[] = {"sh", "-c", (char *)script, NULL};
  start(r, "/bin/sh", argv, envp);
  if (!pump(r, ended, WAIT_MS))
    fail_msg("`%s' did not end (out: %s, err: %s)", script, r->out, r->err);
  finish(r);
}

static char *const path_env[] = {"PATH=/usr/bin:/bin", NULL};

/* The bit of signal sig in /proc/PID/status's signal sets. */
#define SIGBIT(sig) (1ULL << ((sig)-1))

static unsigned long long status_mask(const char *status, const char *field) {
  const char *p = strstr(status, field);
  assert_non_null(p);
  return strtoull(p + strlen(field), NULL, 16);
}

static void assert_signals_default(const struct run *r) {
  assert_string_equal(r->err, "");
  assert_int_equal(status_mask(r->out, "SigBlk:"), 0);
  /* Signals 32 and 33 are glibc's own (thread cancellation, setxid): its
   * sigaction() refuses them with EINVAL, so the keeper cannot reset them.
   * Commands run by GNU make (4.3, Debian 12) get them ignored, so under
   * `make check-unit' they arrive ignored here; glibc installs its own
   * handlers for them when it needs them. */
  unsigned long long ign = status_mask(r->out, "SigIgn:");
  assert_int_equal(ign & ~(SIGBIT(32) | SIGBIT(33)), 0);
}

static void test_signals_reset_in_child(void **state) {
  (void)state;
  ignore_like_collectd();
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGRTMIN + 5, &sa, NULL);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGUSR2);
  sigaddset(&block, SIGHUP);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGRTMIN + 3);
  pthread_sigmask(SIG_BLOCK, &block, NULL);

  /* grep straight from the keeper: dash clears its signal mask when it
   * starts, so only a direct child shows a mask that leaked. */
  struct run r;
  char *const argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status",
                        NULL};
  start(&r, "/bin/grep", argv, path_env);
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  assert_signals_default(&r);
  /* And through a shell, as a module's wrapper script would run. */
  run_sh(&r, "grep -E '^Sig(Blk|Ign)' /proc/self/status", path_env);
  assert_signals_default(&r);
}

static void test_environment_is_exactly_envp(void **state) {
  (void)state;
  setenv("COLLECTD_STAP_TEST_LEAK", "1", 1);
  struct run r;
  char *const argv[] = {"env", NULL};
  char *const envp[] = {"A=1", "B=two words", NULL};
  start(&r, "/usr/bin/env", argv, envp);
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  assert_string_equal(r.out, "A=1\nB=two words\n");

  char *const empty[] = {NULL};
  start(&r, "/usr/bin/env", argv, empty);
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  assert_string_equal(r.out, "");
  unsetenv("COLLECTD_STAP_TEST_LEAK");
}

/* The shell lists its open descriptors after the glob closed the directory
 * it read them from. */
static void test_no_descriptors_leak(void **state) {
  (void)state;
  int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC */
  assert_true(fd >= 0);
  assert_int_equal(dup2(fd, 50), 50);
  int p[2];
  assert_int_equal(pipe(p), 0);

  struct run r;
  run_sh(&r,
         "for f in /proc/self/fd/*; do [ -e \"$f\" ] && echo \"${f##*/}\"; "
         "done; true",
         path_env);
  close(fd);
  close(50);
  close(p[0]);
  close(p[1]);
  assert_string_equal(r.out, "0\n1\n2\n");
}

static void test_standard_descriptors(void **state) {
  (void)state;
  struct run r;
  run_sh(&r, "readlink /proc/self/fd/0; echo out; echo err >&2", path_env);
  assert_string_equal(r.out, "/dev/null\nout\n");
  assert_string_equal(r.err, "err\n");
}

static void test_child_has_its_own_session(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"sh", "-c", "cut -d' ' -f6 /proc/self/stat", NULL};
  start(&r, "/bin/sh", argv, path_env);
  pid_t keeper = r.c.keeper;
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  /* The keeper called setsid(): the session is the keeper's. */
  assert_int_equal(atoi(r.out), keeper);
  assert_int_not_equal(atoi(r.out), getsid(0));
}

/* Field n (from 1) of /proc/PID/stat text: "PID (COMM) STATE PPID PGRP
 * SESSION ...", COMM possibly holding spaces. */
static long stat_field(const char *stat, int n) {
  const char *p = strrchr(stat, ')');
  assert_non_null(p);
  p += 2; /* field 3 */
  for (int i = 3; i < n; i++) {
    p = strchr(p, ' ');
    assert_non_null(p);
    p++;
  }
  return strtol(p, NULL, 10);
}

/* staprun (here cat, exec'd by the keeper's child) leads its own process
 * group, in the keeper's session. */
static void test_child_leads_its_own_process_group(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"cat", "/proc/self/stat", NULL};
  start(&r, "/bin/cat", argv, path_env);
  pid_t keeper = r.c.keeper;
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  assert_int_equal(stat_field(r.out, 5), r.c.pid); /* its group: itself */
  assert_int_equal(stat_field(r.out, 6), keeper);  /* the keeper's session */
  assert_int_not_equal(stat_field(r.out, 5), getpgrp());
}

/* The pid a child printed first on stdout ("PID\n"). */
static bool said_pid(struct run *r) { return strchr(r->out, '\n') != NULL; }

/* A stop reaches what staprun started: the whole group gets SIGTERM, not
 * staprun alone (which here ignores it, and lives on). */
static void test_terminate_reaches_the_group(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"sh", "-c",
                        "sleep 60 & trap '' TERM; echo $!; "
                        "while :; do sleep 0.05; done",
                        NULL};
  start(&r, "/bin/sh", argv, path_env);
  assert_true(pump(&r, said_pid, WAIT_MS));
  pid_t stray = (pid_t)atoi(r.out);
  assert_true(stray > 0 && pid_running(stray));
  assert_int_equal(child_terminate(&r.c), 0);
  bool stray_gone = pid_wait_gone(stray, WAIT_MS);
  bool leader_lives = pid_running(r.c.pid);
  assert_int_equal(child_kill(&r.c), 0);
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  if (!stray_gone)
    kill(stray, SIGKILL);
  assert_true(stray_gone);
  assert_true(leader_lives);
}

/* When staprun ends, what is left of its group is killed: nothing outlives
 * it holding its pipes open (the end would wait for their EOF). */
static void test_strays_killed_when_it_ends(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"sh", "-c", "sleep 60 & echo $!; exit 4", NULL};
  start(&r, "/bin/sh", argv, path_env);
  bool done = pump(&r, ended, WAIT_MS);
  pid_t stray = (pid_t)atoi(r.out);
  finish(&r);
  bool gone = stray > 0 && pid_wait_gone(stray, WAIT_MS);
  if (!gone && stray > 0)
    kill(stray, SIGKILL);
  assert_true(done);
  assert_true(gone);
  assert_true(WIFEXITED(r.c.status));
  assert_int_equal(WEXITSTATUS(r.c.status), 4);
}

static void test_exit_status_with_sigchld_ignored(void **state) {
  (void)state;
  ignore_like_collectd();
  char how[256];
  struct run r;

  run_sh(&r, "exit 7", path_env);
  assert_true(r.c.pid > 0);
  assert_true(r.c.status_known);
  assert_int_equal(r.c.exec_errno, 0);
  assert_true(WIFEXITED(r.c.status));
  assert_int_equal(WEXITSTATUS(r.c.status), 7);
  child_describe(&r.c, how, sizeof(how));
  assert_string_equal(how, "exited with status 7");

  run_sh(&r, "exit 0", path_env);
  assert_true(r.c.status_known);
  assert_int_equal(r.c.status, 0);

  run_sh(&r, "kill -TERM $$", path_env);
  assert_true(r.c.status_known);
  assert_true(WIFSIGNALED(r.c.status));
  assert_int_equal(WTERMSIG(r.c.status), SIGTERM);
  child_describe(&r.c, how, sizeof(how));
  assert_string_equal(how, "was killed by signal 15 (Terminated)");
}

static void test_exec_failure_reported(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"staprun", NULL};
  char how[256];
  start(&r, "/nonexistent/staprun", argv, path_env);
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  assert_int_equal(r.c.exec_errno, ENOENT);
  child_describe(&r.c, how, sizeof(how));
  assert_string_equal(how, "could not be started: No such file or directory");

  /* A file without execute permission. */
  char *dir = tmpdir_new();
  char path[PATH_MAX];
  path_join(path, sizeof(path), dir, "not-executable");
  write_file(path, "#!/bin/sh\n");
  chmod(path, 0644);
  start(&r, path, argv, path_env);
  bool done = pump(&r, ended, WAIT_MS);
  finish(&r);
  tmpdir_remove(dir);
  free(dir);
  assert_true(done);
  assert_int_equal(r.c.exec_errno, EACCES);
}

static void test_terminate(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"sh", "-c", "echo ready; exec sleep 60", NULL};
  start(&r, "/bin/sh", argv, path_env);
  assert_true(pump(&r, said_ready, WAIT_MS));
  assert_int_equal(child_terminate(&r.c), 0);
  assert_true(pump(&r, ended, WAIT_MS));
  finish(&r);
  assert_true(r.c.status_known);
  assert_true(WIFSIGNALED(r.c.status));
  assert_int_equal(WTERMSIG(r.c.status), SIGTERM);
}

static void test_kill_when_sigterm_is_ignored(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {
      "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done",
      NULL};
  start(&r, "/bin/sh", argv, path_env);
  assert_true(pump(&r, said_ready, WAIT_MS));
  assert_int_equal(child_terminate(&r.c), 0);
  /* The shell ignores it; give it time to show that it does. */
  assert_false(pump(&r, ended, 300));
  assert_int_equal(child_kill(&r.c), 0);
  assert_true(pump(&r, ended, WAIT_MS));
  pid_t pid = r.c.pid;
  finish(&r);
  assert_true(WIFSIGNALED(r.c.status));
  assert_int_equal(WTERMSIG(r.c.status), SIGKILL);
  assert_false(pid_running(pid));
}

/* If collectd goes away, its end of the control pipe closes, and the keeper
 * stops staprun by itself. */
static void test_closing_control_pipe_stops_child(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"sh", "-c", "echo ready; exec sleep 60", NULL};
  start(&r, "/bin/sh", argv, path_env);
  assert_true(pump(&r, said_ready, WAIT_MS));
  assert_true(pump(&r, pid_known, WAIT_MS));
  pid_t pid = r.c.pid, keeper = r.c.keeper;
  assert_true(pid_running(pid));
  child_close(&r.c);
  assert_int_equal(r.c.ctl_fd, -1);
  if (!pid_wait_gone(pid, WAIT_MS)) {
    kill(pid, SIGKILL);
    kill(keeper, SIGKILL);
    reap_keeper(keeper);
    fail_msg("the child (pid %d) still runs after the control pipe closed",
             (int)pid);
  }
  assert_true(reap_keeper(keeper));
}

/* A keeper that dies without a report: the end is noticed, the status is
 * unknown. */
static void test_keeper_killed(void **state) {
  (void)state;
  struct run r;
  char *const argv[] = {"sh", "-c", "echo ready; exec sleep 60", NULL};
  start(&r, "/bin/sh", argv, path_env);
  assert_true(pump(&r, said_ready, WAIT_MS));
  assert_true(pump(&r, pid_known, WAIT_MS));
  pid_t pid = r.c.pid;
  assert_int_equal(kill(r.c.keeper, SIGKILL), 0);
  bool noticed = pump(&r, exited, WAIT_MS);
  kill(pid, SIGKILL); /* the orphaned child, not the test's business */
  finish(&r);
  assert_true(noticed);
  assert_true(r.c.exited);
  assert_false(r.c.status_known);
  char how[256];
  child_describe(&r.c, how, sizeof(how));
  assert_non_null(strstr(how, "exit status unknown"));
}

static void test_no_process_left_behind(void **state) {
  (void)state;
  pid_t kids[8];
  struct run r;
  run_sh(&r, "exit 3", path_env);
  run_sh(&r, "kill -KILL $$", path_env);
  size_t n = child_processes(kids, ARRAY_SIZE(kids));
  if (n != 0)
    fail_msg("%zu child process(es) left, the first pid %d", n, (int)kids[0]);
}

static void test_commands_after_close(void **state) {
  (void)state;
  struct run r;
  run_sh(&r, "true", path_env);
  assert_int_equal(child_terminate(&r.c), -EBADF);
  assert_int_equal(child_kill(&r.c), -EBADF);
  child_close(&r.c); /* twice is harmless */
  assert_int_equal(r.c.out_fd, -1);
  assert_int_equal(r.c.status_fd, -1);
}

static void test_describe(void **state) {
  (void)state;
  struct child c;
  char how[256];
  memset(&c, 0, sizeof(c));
  c.exec_errno = EACCES;
  child_describe(&c, how, sizeof(how));
  assert_string_equal(how, "could not be started: Permission denied");

  memset(&c, 0, sizeof(c));
  child_describe(&c, how, sizeof(how));
  assert_non_null(strstr(how, "exit status unknown"));

  c.status_known = true;
  c.status = 3 << 8;
  child_describe(&c, how, sizeof(how));
  assert_string_equal(how, "exited with status 3");

  c.status = SIGKILL;
  child_describe(&c, how, sizeof(how));
  assert_string_equal(how, "was killed by signal 9 (Killed)");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_signals_reset_in_child),
      T(test_environment_is_exactly_envp),
      T(test_no_descriptors_leak),
      T(test_standard_descriptors),
      T(test_child_has_its_own_session),
      T(test_child_leads_its_own_process_group),
      T(test_terminate_reaches_the_group),
      T(test_strays_killed_when_it_ends),
      T(test_exit_status_with_sigchld_ignored),
      T(test_exec_failure_reported),
      T(test_terminate),
      T(test_kill_when_sigterm_is_ignored),
      T(test_closing_control_pipe_stops_child),
      T(test_keeper_killed),
      T(test_no_process_left_behind),
      T(test_commands_after_close),
      T(test_describe),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("spawn", tests, NULL, NULL);
}
