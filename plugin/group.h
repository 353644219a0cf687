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
  uint64_t series_dropped;
  uint64_t decreases;  /* counter values below their previous one */
  uint64_t duplicates; /* batches refused for naming a series twice */
};

struct ratelimit {
  time_t window;
  unsigned used;
  unsigned suppressed;
};

typedef int (*group_thread_create_fn)(pthread_t *thread, void *(*start)(void *),
                                      void *arg, const char *name);

struct group {
  struct group_config cfg;
  char staprun[PATH_MAX];
  uint64_t restart_delay_ms;
  uint64_t restart_delay_max_ms;
  uint64_t stop_timeout_ms;
  char kernel_release[128];

  pthread_t thread;
  bool thread_started;
  atomic_bool stop;
  int wake[2]; /* self-pipe: group_request_stop wakes the thread's poll */

  /* lock protects stats only; everything below it belongs to the thread. */
  pthread_mutex_t lock;
  struct group_stats stats;

  struct batch batch;
  struct offsets *offsets;
  struct child child;
  bool refused; /* the module failed the hello check this run */
  struct ratelimit log_limit;
  char last_error[512]; /* staprun's last ERROR line of this run */
};

int group_init(struct group *g, const struct plugin_config *pcfg,
               const struct group_config *cfg, const char *kernel_release);
int group_start(struct group *g, group_thread_create_fn create);
/* Asks the thread to stop staprun and end; returns at once. */
void group_request_stop(struct group *g);
/* Waits for the thread (bounded by StopTimeout plus a little). */
void group_join(struct group *g);
void group_destroy(struct group *g);
void group_stats_get(struct group *g, struct group_stats *out);

/* A hint for an operator, for a line staprun printed; NULL if none. */
const char *group_hint(const char *staprun_line);

#endif
