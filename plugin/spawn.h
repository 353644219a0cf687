/* Starts staprun under a small keeper process and learns how it ended.
 *
 * collectd ignores SIGCHLD, so its children are reaped by the kernel and their
 * exit status is lost, and the exec plugin reaps children process-wide. The
 * keeper (our direct child) is the parent of staprun, waits for it itself and
 * writes its exit status to a pipe; signals to staprun go through the keeper,
 * which knows staprun has not been reaped yet, so a recycled pid is never
 * signalled. staprun runs in its own process group, and every signal goes
 * to the group, so what staprun starts stops with it. If collectd dies, the
 * keeper sees its control pipe close and stops staprun, so no module is left
 * loaded. */
#ifndef COLLECTD_STAP_SPAWN_H
#define COLLECTD_STAP_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct child {
  pid_t keeper;
  pid_t pid;     /* staprun, once the keeper has said it */
  int out_fd;    /* staprun's stdout (read end, non-blocking) */
  int err_fd;    /* staprun's stderr (read end, non-blocking) */
  int status_fd; /* keeper's reports (read end, non-blocking) */
  int ctl_fd;    /* commands to the keeper (write end) */
  bool exited;   /* the keeper reported the end, or vanished */
  bool status_known;
  int status;     /* wait status, when status_known */
  int exec_errno; /* non-zero when execve failed */
  size_t status_len;
  char status_buf[128];
};

/* Keeper's grace period after collectd vanished, before SIGKILL. */
#define SPAWN_ORPHAN_KILL_MS 10000

/* Starts path with argv and envp (no shell). The child gets /dev/null on
 * stdin, pipes on stdout and stderr, default signal dispositions, an empty
 * signal mask, no other file descriptors, the keeper's session and its own
 * process group. When it ends, what is left of its process group is killed.
 * Returns 0 or a negative errno. */
int child_spawn(struct child *c, const char *path, char *const argv[],
                char *const envp[]);

/* Reads the keeper's reports; call when status_fd is readable. Returns 1 once
 * c->exited is set, else 0. */
int child_read_status(struct child *c);

/* Asks the keeper to send SIGTERM or SIGKILL to staprun's process group. */
int child_terminate(struct child *c);
int child_kill(struct child *c);

/* Closes all descriptors. Closing the control pipe makes a keeper whose
 * child still runs stop it. */
void child_close(struct child *c);

/* "exited with status 1", "killed by signal 9", ... */
void child_describe(const struct child *c, char *buf, size_t size);

#endif
