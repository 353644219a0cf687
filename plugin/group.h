/* One probe group: a thread that keeps staprun running on the group's module,
 * reads its output and dispatches complete batches. */
#ifndef COLLECTD_STAP_GROUP_H
#define COLLECTD_STAP_GROUP_H

#include "batch.h"
#include "config.h"
#include "offset.h"
#include "spawn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* What the group reports about itself (dispatched by the read callback). */
struct group_stats {
  bool running; /* a module session is up (hello seen, staprun alive) */
  uint64_t starts;
  uint64_t restarts;
  uint64_t batches;
  uint64_t bad_lines;
  uint64_t discarded; /* every batch not dispatched, duplicates included */
  uint64_t gaps;
  uint64_t series_dropped; /* records beyond MaxSeries, of any kind */
  uint64_t decreases;      /* counter values below their previous one */
  uint64_t duplicates;     /* batches refused for naming a series twice */
};

struct ratelimit {
  time_t window;
  unsigned used;
  unsigned suppressed;
};

/* staprun's ERROR lines kept per run, for the hints and the report of how
 * the run ended (the first one is often the cause, the last a consequence:
 * "File exists", then "Rerun with staprun option '-R'"). */
#define GROUP_ERRORS_KEPT 8
#define GROUP_ERROR_SIZE 200
/* A module says hello when it starts; one that has not after two intervals
 * (and at least this long: loading a module with many probes takes
 * seconds) is reported. */
#define GROUP_HELLO_MIN_MS 5000
/* A group thread that has not ended this long after its StopTimeout is
 * left behind (group_join). */
#define GROUP_JOIN_GRACE_MS 10000
/* A module whose output cut this many batches in a row (a begin before the
 * end), and none complete between them, is restarted: staprun's reader can lose
 * its place in the relay buffer after output was dropped (SystemTap 4.8's
 * stapio: "bufhdr read error, attempting resync"), and then every later batch
 * can come cut while the module itself runs on. (The cause seen, 4.8's print
 * flush dropping a flush whose header straddles relay sub-buffers, is fixed in
 * the modules' build: scripts/build-modules.sh, fix_header.) */
#define GROUP_LOST_IN_A_ROW 3

typedef int (*group_thread_create_fn)(pthread_t *thread, void *(*start)(void *),
                                      void *arg, const char *name);

struct group {
  struct group_config cfg;
  char staprun[PATH_MAX];
  char proc_modules[PATH_MAX]; /* the kernel's list of loaded modules */
  char module_name[256];       /* as /proc/modules lists it: NAME of NAME.ko */
  uint64_t restart_delay_ms;
  uint64_t restart_delay_max_ms;
  uint64_t stop_timeout_ms;
  uint64_t hello_min_ms; /* GROUP_HELLO_MIN_MS; tests lower it */
  char kernel_release[128];

  pthread_t thread;
  bool thread_started;
  bool abandoned; /* group_join gave up on the thread: it still uses g */
  atomic_bool stop;
  atomic_bool done; /* the thread no longer touches g */
  int wake[2];      /* self-pipe: group_request_stop wakes the thread's poll */

  /* lock protects stats only; everything below it belongs to the thread. */
  pthread_mutex_t lock;
  struct group_stats stats;

  struct batch batch;
  struct offsets *offsets;
  struct child child;
  bool refused; /* the module failed the hello check this run */
  /* Batches cut in a row this run (reset by a complete one), and whether
   * that made the run out of step: restarted (GROUP_LOST_IN_A_ROW). */
  unsigned lost_in_a_row;
  bool out_of_step;
  struct ratelimit log_limit;
  /* staprun's last GROUP_ERRORS_KEPT ERROR lines of this run (a ring,
   * escaped), and how many it printed. */
  char errors[GROUP_ERRORS_KEPT][GROUP_ERROR_SIZE];
  unsigned nerrors;
};

int group_init(struct group *g, const struct plugin_config *pcfg,
               const struct group_config *cfg, const char *kernel_release);
int group_start(struct group *g, group_thread_create_fn create);
/* Asks the thread to stop staprun and end; returns at once. */
void group_request_stop(struct group *g);
/* Waits for the thread at most timeout_ms (its stop takes StopTimeout, then
 * SIGKILL, then a few seconds). Returns false if it has not ended: that is
 * logged, the thread is detached and g stays in use by it (group_destroy
 * then frees nothing until it is done), so a staprun stuck in the kernel
 * never hangs collectd's shutdown. */
bool group_join(struct group *g, uint64_t timeout_ms);
/* Frees the group's state, unless an abandoned thread still uses it. */
void group_destroy(struct group *g);
void group_stats_get(struct group *g, struct group_stats *out);

/* A hint for an operator, for a line staprun printed; NULL if none. */
const char *group_hint(const char *staprun_line);

#endif
