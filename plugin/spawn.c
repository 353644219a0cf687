/* Process handling for staprun. Between fork and exec only async-signal-safe
 * calls are made: collectd is multi-threaded, and another thread may have held
 * malloc's or stdio's lock at the moment of fork. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Pipe ends at 3 and above, so that dup2 onto 0-2 never clobbers one when
 * collectd runs with a standard descriptor closed. */
static int pipe_high(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0)
    return -errno;
  for (int i = 0; i < 2; i++) {
    if (fds[i] < 3) {
      int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
      if (fd < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
      }
      close(fds[i]);
      fds[i] = fd;
    }
  }
  return 0;
}

static void close_pair(int fds[2]) {
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  fds[0] = fds[1] = -1;
}

/* Async-signal-safe "TAG NUMBER\n" writer. */
static void report(int fd, char tag, long value) {
  char buf[32];
  char digits[24];
  size_t nd = 0, n = 0;
  unsigned long v = value < 0 ? (unsigned long)(-value) : (unsigned long)value;
  do {
    digits[nd++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0 && nd < sizeof(digits));
  buf[n++] = tag;
  buf[n++] = ' ';
  if (value < 0)
    buf[n++] = '-';
  while (nd > 0)
    buf[n++] = digits[--nd];
  buf[n++] = '\n';
  ssize_t unused = write(fd, buf, n);
  (void)unused;
}

static void reset_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &sa, NULL); /* fails harmlessly for KILL, STOP, RT */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static void ignore_signal(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigaction(sig, &sa, NULL);
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_range_if(unsigned lo, unsigned hi) {
  if (lo <= hi)
    syscall(SYS_close_range, lo, hi, 0U);
}

static void close_all_but(int a, int b) {
  unsigned lo = (unsigned)(a < b ? a : b), hi = (unsigned)(a < b ? b : a);
  close_range_if(3, lo - 1);
  close_range_if(lo + 1, hi - 1);
  close_range_if(hi + 1, ~0U);
}

static _Noreturn void run_grandchild(const char *path, char *const argv[],
                                     char *const envp[], int out_w, int err_w,
                                     int status_w) {
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, 0) < 0 || dup2(out_w, 1) < 0 ||
      dup2(err_w, 2) < 0 || dup3(status_w, 3, O_CLOEXEC) < 0) {
    report(status_w, 'E', errno);
    _exit(127);
  }
  /* Nothing of collectd's (sockets, files) leaks into staprun. */
  syscall(SYS_close_range, 4U, ~0U, 0U);
  /* Its own process group, so that a stop reaches everything staprun
   * starts (stapio, and whatever that runs), not staprun alone. The keeper
   * makes the same call, so the group exists whichever runs first. */
  setpgid(0, 0);
  execve(path, argv, envp);
  report(3, 'E', errno);
  _exit(127);
}

/* A signal to staprun's whole process group; to staprun alone if the group
 * is not there (both setpgid calls failed), so a stop is never lost. */
static void signal_group(pid_t pid, int sig) {
  if (kill(-pid, sig) != 0 && errno == ESRCH)
    kill(pid, sig);
}

/* Whether staprun has ended. It is left a zombie (WNOWAIT), which keeps its
 * pid, and so its process group id, from being reused: what is left of the
 * group (strays that outlived staprun, holding its pipes) is killed, then
 * staprun is reaped. Sets *status to a wait status. */
static bool reap_staprun(pid_t pid, int *status) {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      si.si_pid != pid)
    return false;
  kill(-pid, SIGKILL);
  *status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
                                     : (si.si_status & 0x7f);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
  return true;
}

static _Noreturn void run_keeper(const char *path, char *const argv[],
                                 char *const envp[], int out_w, int err_w,
                                 int status_w, int ctl_r) {
  reset_signals();
  /* Survive the signals meant for staprun or the terminal, so the exit
   * status can still be reported. */
  ignore_signal(SIGINT);
  ignore_signal(SIGTERM);
  ignore_signal(SIGHUP);
  ignore_signal(SIGPIPE);
  setsid();

  pid_t pid = fork();
  if (pid < 0) {
    report(status_w, 'E', errno);
    _exit(127);
  }
  if (pid == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    close(ctl_r);
    run_grandchild(path, argv, envp, out_w, err_w, status_w);
  }
  setpgid(pid, pid);
  close(out_w);
  close(err_w);
  /* Keep only our two pipes. Descriptors inherited from collectd include the
   * control pipes of other groups' keepers: holding one would keep that
   * keeper from seeing collectd go away. */
  close_all_but(status_w, ctl_r);
  report(status_w, 'P', pid);

  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  bool orphaned = false;
  long kill_at = 0;
  for (;;) {
    struct pollfd pfd[2] = {{.fd = orphaned ? -1 : ctl_r, .events = POLLIN},
                            {.fd = pidfd, .events = POLLIN}};
    int timeout = pidfd < 0 ? 100 : -1;
    if (orphaned) {
      long left = kill_at - now_ms();
      if (left <= 0) {
        signal_group(pid, SIGKILL);
        left = 1000;
        kill_at = now_ms() + left;
      }
      if (timeout < 0 || left < timeout)
        timeout = (int)left;
    }
    poll(pfd, 2, timeout);

    if (pfd[0].revents) {
      char cmd;
      ssize_t n = read(ctl_r, &cmd, 1);
      if (n == 1 && cmd == 'T') {
        signal_group(pid, SIGTERM);
      } else if (n == 1 && cmd == 'K') {
        signal_group(pid, SIGKILL);
      } else if (n == 0 || (n < 0 && errno != EINTR)) {
        orphaned = true;
        signal_group(pid, SIGTERM);
        kill_at = now_ms() + SPAWN_ORPHAN_KILL_MS;
      }
    }

    int status;
    if (reap_staprun(pid, &status)) {
      report(status_w, 'X', status);
      _exit(0);
    }
  }
}

int child_spawn(struct child *c, const char *path, char *const argv[],
                char *const envp[]) {
  int out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1}, ctl[2] = {-1, -1};
  int rc;

  memset(c, 0, sizeof(*c));
  c->keeper = c->pid = -1;
  c->out_fd = c->err_fd = c->status_fd = c->ctl_fd = -1;

  if ((rc = pipe_high(out)) != 0 || (rc = pipe_high(err)) != 0 ||
      (rc = pipe_high(st)) != 0 || (rc = pipe_high(ctl)) != 0)
    goto fail;

  pid_t keeper = fork();
  if (keeper < 0) {
    rc = -errno;
    goto fail;
  }
  if (keeper == 0) {
    /* The parent's ends stay with the parent: a keeper holding the control
     * pipe's write end would never see it close when collectd goes. */
    close(out[0]);
    close(err[0]);
    close(st[0]);
    close(ctl[1]);
    run_keeper(path, argv, envp, out[1], err[1], st[1], ctl[0]);
  }

  close(out[1]);
  close(err[1]);
  close(st[1]);
  close(ctl[0]);
  c->keeper = keeper;
  c->out_fd = out[0];
  c->err_fd = err[0];
  c->status_fd = st[0];
  c->ctl_fd = ctl[1];
  fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
  fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
  fcntl(c->status_fd, F_SETFL, O_NONBLOCK);
  return 0;

fail:
  close_pair(out);
  close_pair(err);
  close_pair(st);
  close_pair(ctl);
  return rc;
}

static void parse_report(struct child *c, const char *line) {
  long v = strtol(line + (line[0] ? 1 : 0), NULL, 10);
  switch (line[0]) {
  case 'P':
    c->pid = (pid_t)v;
    break;
  case 'E':
    c->exec_errno = (int)v;
    break;
  case 'X':
    c->status = (int)v;
    c->status_known = true;
    c->exited = true;
    break;
  default:
    break;
  }
}

int child_read_status(struct child *c) {
  if (c->status_fd < 0)
    return c->exited;
  for (;;) {
    ssize_t n = read(c->status_fd, c->status_buf + c->status_len,
                     sizeof(c->status_buf) - 1 - c->status_len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        break;
      n = 0; /* treat as end */
    }
    if (n == 0) {
      /* The keeper is gone; without an X report the status is unknown. */
      c->exited = true;
      close(c->status_fd);
      c->status_fd = -1;
      break;
    }
    c->status_len += (size_t)n;
    c->status_buf[c->status_len] = '\0';
    char *nl;
    while ((nl = strchr(c->status_buf, '\n')) != NULL) {
      *nl = '\0';
      parse_report(c, c->status_buf);
      size_t used = (size_t)(nl + 1 - c->status_buf);
      memmove(c->status_buf, nl + 1, c->status_len - used + 1);
      c->status_len -= used;
    }
    if (c->status_len == sizeof(c->status_buf) - 1)
      c->status_len = 0; /* never happens with our keeper */
  }
  return c->exited;
}

static int command(struct child *c, char cmd) {
  if (c->ctl_fd < 0)
    return -EBADF;
  ssize_t n;
  do
    n = write(c->ctl_fd, &cmd, 1);
  while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : -errno;
}

int child_terminate(struct child *c) { return command(c, 'T'); }
int child_kill(struct child *c) { return command(c, 'K'); }

void child_close(struct child *c) {
  int *fds[] = {&c->out_fd, &c->err_fd, &c->status_fd, &c->ctl_fd};
  for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
    if (*fds[i] >= 0)
      close(*fds[i]);
    *fds[i] = -1;
  }
  /* A keeper that reported the end exits at once: reap it, so that a host
   * that does not ignore SIGCHLD keeps no zombie (with SIGCHLD ignored this
   * returns ECHILD once it is gone). */
  if (c->exited && c->keeper > 0) {
    while (waitpid(c->keeper, NULL, 0) < 0 && errno == EINTR)
      ;
    c->keeper = -1;
  }
}

void child_describe(const struct child *c, char *buf, size_t size) {
  if (c->exec_errno != 0)
    snprintf(buf, size, "could not be started: %s", strerror(c->exec_errno));
  else if (!c->status_known)
    snprintf(buf, size, "ended, exit status unknown (its keeper was killed)");
  else if (WIFEXITED(c->status))
    snprintf(buf, size, "exited with status %d", WEXITSTATUS(c->status));
  else if (WIFSIGNALED(c->status))
    snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(c->status),
             strsignal(WTERMSIG(c->status)));
  else
    snprintf(buf, size, "ended with wait status %#x", c->status);
}
