/* The supervisor of one probe group. All state but `stats` is owned by the
 * group's thread; collectd's threads only read stats (under lock) and ask the
 * thread to stop through the self-pipe. */
#include "group.h"
#include "channel.h"
#include "dispatch.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_BURST 10       /* log lines per group and minute before muting */
#define EXIT_GRACE_MS 2000 /* wait for pipes to close after staprun ended */
#define KILL_WAIT_MS 3000  /* wait for staprun to end after SIGKILL */
#define HEALTHY_RUN_MS 60000
/* A series key: PINST/TYPE/TINST. */
#define KEY_SIZE (3 * RECORD_NAME_SIZE + 4)

static char *clean_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                            NULL};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Logs through a per-group budget, so a module printing garbage at full speed
 * costs one line a minute, not a flooded syslog. */
__attribute__((format(printf, 3, 4))) static void
limited_log(struct group *g, int level, const char *fmt, ...) {
  time_t now = time(NULL);
  struct ratelimit *rl = &g->log_limit;
  if (now - rl->window >= 60) {
    if (rl->suppressed > 0)
      stap_log(LOG_WARNING,
               "stap plugin: group %s: %u more messages suppressed in the "
               "last minute",
               g->cfg.name, rl->suppressed);
    rl->window = now;
    rl->used = 0;
    rl->suppressed = 0;
  }
  if (rl->used >= LOG_BURST) {
    rl->suppressed++;
    return;
  }
  rl->used++;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  stap_log(level, "stap plugin: group %s: %s", g->cfg.name, msg);
}

static void count(struct group *g, uint64_t *field, uint64_t n) {
  pthread_mutex_lock(&g->lock);
  *field += n;
  pthread_mutex_unlock(&g->lock);
}

static void set_running(struct group *g, bool running) {
  pthread_mutex_lock(&g->lock);
  g->stats.running = running;
  pthread_mutex_unlock(&g->lock);
}

static const struct {
  const char *needle;
  const char *hint;
} hints[] = {
    {"Function not implemented",
     "this kernel cannot load modules (built without CONFIG_MODULES); run "
     "collectd-stap on a kernel with module support"},
    {"File exists",
     "a module of that name was still loaded (left behind by a staprun or "
     "collectd that was killed); the plugin detaches and removes it with "
     "`staprun -d NAME' before the next start (NAME: the module's file name "
     "without .ko); if that fails, run it by hand or `rmmod NAME'"},
    {"Key was rejected",
     "the kernel enforces module signatures (Secure Boot): sign the module "
     "with `make modules SIGN_KEY=... SIGN_CERT=...' and enrol the key"},
    {"Required key not available",
     "the kernel enforces module signatures (Secure Boot): sign the module "
     "with `make modules SIGN_KEY=... SIGN_CERT=...' and enrol the key"},
    {"Operation not permitted",
     "collectd needs root (or membership of stapusr with the module under "
     "/lib/modules/RELEASE/systemtap) to load modules"},
    {"Permission denied",
     "collectd needs root (or membership of stapusr with the module under "
     "/lib/modules/RELEASE/systemtap) to load modules"},
    {"Invalid module format",
     "the module was built for another kernel: rebuild it with `make modules "
     "KVER=$(uname -r)'"},
    {"doesn't match",
     "the module was built for another kernel: rebuild it with `make modules "
     "KVER=$(uname -r)'"},
    {"No such file",
     "the module file is missing: build it with `make modules' and install "
     "it, or point the group's Module option at it"},
};

const char *group_hint(const char *line) {
  for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
    if (strstr(line, hints[i].needle) != NULL)
      return hints[i].hint;
  return NULL;
}

/* NAME of DIR/NAME.ko: the name staprun gives the module, and /proc/modules
 * lists. */
static void module_name_of(const char *module, char *out, size_t size) {
  const char *base = strrchr(module, '/');
  base = base != NULL ? base + 1 : module;
  size_t n = strlen(base);
  if (n > 3 && strcmp(base + n - 3, ".ko") == 0)
    n -= 3;
  snprintf(out, size, "%.*s", (int)n, base);
}

int group_init(struct group *g, const struct plugin_config *pcfg,
               const struct group_config *cfg, const char *kernel_release) {
  memset(g, 0, sizeof(*g));
  g->cfg = *cfg;
  snprintf(g->staprun, sizeof(g->staprun), "%s", pcfg->staprun);
  snprintf(g->proc_modules, sizeof(g->proc_modules), "%s", pcfg->proc_modules);
  module_name_of(cfg->module, g->module_name, sizeof(g->module_name));
  g->restart_delay_ms = pcfg->restart_delay_ms;
  g->restart_delay_max_ms = pcfg->restart_delay_max_ms;
  g->stop_timeout_ms = pcfg->stop_timeout_ms;
  g->hello_min_ms = GROUP_HELLO_MIN_MS;
  snprintf(g->kernel_release, sizeof(g->kernel_release), "%s", kernel_release);
  g->wake[0] = g->wake[1] = -1;
  g->child.out_fd = g->child.err_fd = g->child.status_fd = g->child.ctl_fd = -1;
  atomic_init(&g->stop, false);
  atomic_init(&g->done, false);
  if (pthread_mutex_init(&g->lock, NULL) != 0)
    return -1;
  if (pipe2(g->wake, O_CLOEXEC | O_NONBLOCK) != 0)
    goto fail;
  if (batch_init(&g->batch, cfg->name, cfg->max_batch_records) != 0)
    goto fail;
  g->offsets = offsets_new(cfg->max_series);
  if (g->offsets == NULL)
    goto fail;
  batch_use_series(&g->batch, g->offsets);
  return 0;
fail:
  group_destroy(g);
  return -1;
}

void group_destroy(struct group *g) {
  /* A thread group_join gave up on may still wake up and use all of it;
   * collectd is exiting, so it is left to the end of the process. */
  if (g->abandoned && !atomic_load(&g->done))
    return;
  for (int i = 0; i < 2; i++)
    if (g->wake[i] >= 0)
      close(g->wake[i]);
  g->wake[0] = g->wake[1] = -1;
  batch_free(&g->batch);
  offsets_free(g->offsets);
  g->offsets = NULL;
  pthread_mutex_destroy(&g->lock);
}

void group_stats_get(struct group *g, struct group_stats *out) {
  pthread_mutex_lock(&g->lock);
  *out = g->stats;
  pthread_mutex_unlock(&g->lock);
}

/* ---- Dispatch ------------------------------------------------------------ */

/* A record's series as the log names it. */
static void key_of(const struct record *r, char key[KEY_SIZE]) {
  snprintf(key, KEY_SIZE, "%s/%s/%s", r->plugin_instance, r->type,
           r->type_instance);
}

static void series_dropped(struct group *g, const struct record *r) {
  char key[KEY_SIZE];
  key_of(r, key);
  count(g, &g->stats.series_dropped, 1);
  limited_log(g, LOG_WARNING,
              "more than MaxSeries (%zu) series; %s is not dispatched. Raise "
              "MaxSeries or lower the module's caps.",
              g->cfg.max_series, key);
}

/* The offset-corrected values of a derive record of series id. Returns
 * false if they cannot be had (out of memory): the record is not
 * dispatched. */
static bool counters_of(struct group *g, long id, const struct record *r,
                        int64_t values[]) {
  for (size_t v = 0; v < r->nvalues; v++) {
    struct offsets_step step;
    if (offsets_update_id(g->offsets, id, v, r->derive[v], &step) != 0) {
      series_dropped(g, r);
      return false;
    }
    if (step.decreased) {
      char key[KEY_SIZE];
      key_of(r, key);
      count(g, &g->stats.decreases, 1);
      limited_log(g, LOG_WARNING,
                  "counter %s#%zu went back from %lld to %lld within one "
                  "module session (not a restart); it stays at %lld until "
                  "the module's value is back at %lld",
                  key, v, (long long)step.previous, (long long)r->derive[v],
                  (long long)step.value, (long long)step.high);
    }
    values[v] = step.value;
  }
  return true;
}

/* The series of record i (r): the batch found it in the table, or it takes
 * a place now; -1 when the table is full. */
static long series_of(struct group *g, size_t i, const struct record *r) {
  long id = batch_series(&g->batch, i);
  if (id >= 0)
    return id;
  struct series_name n = {
      {r->plugin_instance, r->type, r->type_instance},
      {strlen(r->plugin_instance), strlen(r->type), strlen(r->type_instance)}};
  return offsets_claim_name(g->offsets, &n, offsets_hash(&n));
}

/* Every record takes a place in the series table first, so that one
 * MaxSeries bounds what the group sends on: values and notifications alike
 * become files, RRDs and cache entries behind collectd. */
static void dispatch_batch(struct group *g) {
  struct record r; /* batch_record fills what its kind needs */
  clock_gettime(CLOCK_REALTIME, &r.time);
  for (size_t i = 0; i < batch_count(&g->batch); i++) {
    batch_record(&g->batch, i, &r);
    long id = series_of(g, i, &r);
    if (id < 0) {
      series_dropped(g, &r);
      continue;
    }
    int64_t values[RECORD_MAX_VALUES] = {0};
    if (r.kind == RECORD_DERIVE && !counters_of(g, id, &r, values))
      continue;
    if (r.kind == RECORD_NOTIFY) {
      dispatch_notification(&g->cfg, &r);
      continue;
    }
    const char *why = dispatch_value(&g->cfg, &r, values);
    if (why != NULL) {
      char key[KEY_SIZE];
      key_of(&r, key);
      limited_log(g, LOG_WARNING, "value %s not dispatched: %s", key, why);
    }
  }
}

/* Output cut batch after batch: the run is restarted rather than left
 * printing batches that never arrive whole (GROUP_LOST_IN_A_ROW). Batches
 * refused for what they say (a module bug) do not count: a restart would
 * not mend them. */
static void lost_again(struct group *g, const struct batch_result *res) {
  if (!res->cut || ++g->lost_in_a_row < GROUP_LOST_IN_A_ROW || g->out_of_step)
    return;
  g->out_of_step = true;
  stap_log(LOG_ERR,
           "stap plugin: group %s: %u batches in a row cut and none "
           "complete: the module's output arrives cut or garbled (staprun's "
           "reader may have lost its place after output was dropped; see "
           "staprun's messages above). Restarting the module; if this "
           "recurs, raise BufferSize.",
           g->cfg.name, g->lost_in_a_row);
}

static void discarded(struct group *g, const struct batch_result *res) {
  count(g, &g->stats.discarded, 1);
  if (res->record == NULL) {
    limited_log(g, LOG_WARNING, "batch discarded: %s", res->why);
    lost_again(g, res);
    return;
  }
  /* Its own counter too: a module that names a series twice has a bug that
   * discarded_batches alone would not tell from lost output. */
  count(g, &g->stats.duplicates, 1);
  const struct record *r = res->record;
  limited_log(g, LOG_WARNING,
              "batch %llu discarded: it names series %s/%s/%s twice; none "
              "of its values is dispatched",
              (unsigned long long)g->batch.seq, r->plugin_instance, r->type,
              r->type_instance[0] ? r->type_instance : "-");
}

static void batch_complete(struct group *g, const struct batch_result *res) {
  /* collectd 5.12 stops its write threads before it runs shutdown
   * callbacks: the batch the module's end probe prints when it is stopped
   * would be queued and never written, so it is not dispatched at all. */
  if (atomic_load(&g->stop)) {
    stap_log(LOG_DEBUG,
             "stap plugin: group %s: batch %llu came after shutdown began; "
             "not dispatched (collectd no longer writes values then)",
             g->cfg.name, (unsigned long long)g->batch.last_seq);
    return;
  }
  dispatch_batch(g);
  count(g, &g->stats.batches, 1);
  if (res->gaps > 0) {
    count(g, &g->stats.gaps, res->gaps);
    limited_log(g, LOG_WARNING,
                "%llu batch(es) missing before batch %llu (module output "
                "lost or the module was stalled)",
                (unsigned long long)res->gaps,
                (unsigned long long)g->batch.last_seq);
  }
}

static void refused(struct group *g, const struct batch_result *res) {
  g->refused = true;
  if (res->version != RECORD_PROTOCOL_VERSION)
    stap_log(LOG_ERR,
             "stap plugin: group %s: module %s speaks record protocol "
             "version %lu, this plugin speaks version %d. Rebuild the "
             "module from the same collectd-stap release (make modules) "
             "and install it. Stopping it.",
             g->cfg.name, g->cfg.module, res->version, RECORD_PROTOCOL_VERSION);
  else
    stap_log(LOG_ERR,
             "stap plugin: group %s: module %s says it is group \"%s\". "
             "Point <Group \"%s\">'s Module at collectd_stap_%s.ko. "
             "Stopping it.",
             g->cfg.name, g->cfg.module, res->group, g->cfg.name, g->cfg.name);
}

/* ---- staprun's output ---------------------------------------------------- */

static void on_stdout_line(void *ctx, const char *line, size_t len,
                           bool truncated) {
  struct group *g = ctx;
  struct batch_result res;
  char shown[512];

  if (truncated) {
    /* Feed it anyway so an open batch is tainted. */
    batch_feed(&g->batch, line, RECORD_LINE_MAX + 1, &res);
    count(g, &g->stats.bad_lines, 1);
    record_escape(line, 60, shown, sizeof(shown));
    limited_log(g, LOG_WARNING,
                "bad line from the module (longer than %d bytes): %s...",
                RECORD_LINE_MAX, shown);
    return;
  }
  batch_feed(&g->batch, line, len, &res);
  switch (res.event) {
  case BATCH_NOTHING:
    break;
  case BATCH_HELLO:
    offsets_new_session(g->offsets);
    set_running(g, true);
    stap_log(LOG_INFO,
             "stap plugin: group %s: module %s is up (protocol version %d)",
             g->cfg.name, g->cfg.module, RECORD_PROTOCOL_VERSION);
    break;
  case BATCH_INFO:
    record_escape(res.record->text, strlen(res.record->text), shown,
                  sizeof(shown));
    stap_log(LOG_INFO, "stap plugin: group %s: module says: %s", g->cfg.name,
             shown);
    break;
  case BATCH_COMPLETE:
    g->lost_in_a_row = 0;
    batch_complete(g, &res);
    break;
  case BATCH_BAD_LINE:
    count(g, &g->stats.bad_lines, 1);
    record_escape(line, len > 120 ? 120 : len, shown, sizeof(shown));
    limited_log(g, LOG_WARNING, "bad line from the module (%s): %s", res.why,
                shown);
    break;
  case BATCH_DISCARDED:
    discarded(g, &res);
    break;
  case BATCH_REFUSED:
    refused(g, &res);
    break;
  }
}

static void on_stderr_line(void *ctx, const char *line, size_t len,
                           bool truncated) {
  struct group *g = ctx;
  (void)truncated;
  if (len == 0)
    return;
  char shown[640];
  record_escape(line, len > 400 ? 400 : len, shown, sizeof(shown));
  int level = LOG_INFO;
  /* The line is not NUL-terminated (channel_line_cb). */
  if (len >= 5 && memcmp(line, "ERROR", 5) == 0) {
    level = LOG_ERR;
    /* Every one, not just the last: the cause comes first, and its hint
     * must not be hidden by what staprun says after it. */
    char *slot = g->errors[g->nerrors % GROUP_ERRORS_KEPT];
    record_escape(line, len, slot, GROUP_ERROR_SIZE);
    g->nerrors++;
  } else if (len >= 7 && memcmp(line, "WARNING", 7) == 0) {
    level = LOG_WARNING;
  }
  limited_log(g, level, "staprun: %s", shown);
}

/* The kept ERROR lines of this run, oldest first, joined into said, and the
 * distinct hints they call for, joined into hint. */
static void what_staprun_said(const struct group *g, char *said, size_t ssize,
                              char *hint, size_t hsize) {
  unsigned kept =
      g->nerrors < GROUP_ERRORS_KEPT ? g->nerrors : GROUP_ERRORS_KEPT;
  size_t sused = 0, hused = 0;
  said[0] = hint[0] = '\0';
  if (g->nerrors > kept)
    sused = (size_t)snprintf(said, ssize, "(%u earlier ERROR lines) ",
                             g->nerrors - kept);
  for (unsigned i = g->nerrors - kept; i < g->nerrors; i++) {
    const char *line = g->errors[i % GROUP_ERRORS_KEPT];
    if (sused < ssize)
      sused += (size_t)snprintf(said + sused, ssize - sused, "%s%s",
                                i > g->nerrors - kept ? "; " : "", line);
    const char *h = group_hint(line);
    if (h != NULL && strstr(hint, h) == NULL && hused < hsize)
      hused += (size_t)snprintf(hint + hused, hsize - hused, "%s%s",
                                hused ? "; " : "", h);
  }
}

/* ---- Waiting ---------------------------------------------------------------
 */

static void drain_wake(struct group *g) {
  char buf[64];
  while (read(g->wake[0], buf, sizeof(buf)) > 0)
    ;
}

/* Sleeps up to ms; returns true if asked to stop. */
static bool sleep_or_stop(struct group *g, uint64_t ms) {
  uint64_t until = now_ms() + ms;
  while (!atomic_load(&g->stop)) {
    uint64_t now = now_ms();
    if (now >= until)
      return false;
    struct pollfd p = {.fd = g->wake[0], .events = POLLIN};
    poll(&p, 1, (int)(until - now));
    drain_wake(g);
  }
  return true;
}

/* ---- Before a start: what is run and loaded may be trusted -------------- */

static bool staprun_ok(struct group *g) {
  char why[768];
  int fd;
  enum config_trust t =
      config_open_trusted(g->staprun, O_PATH, &fd, why, sizeof(why));
  if (t == CONFIG_TRUST_OK) {
    close(fd);
    if (access(g->staprun, X_OK) == 0)
      return true;
    snprintf(why, sizeof(why), "%s", strerror(errno));
  }
  if (t == CONFIG_TRUST_REFUSED)
    stap_log(LOG_ERR,
             "stap plugin: group %s: Staprun %s: %s. Not run: collectd "
             "runs it as root.",
             g->cfg.name, g->staprun, why);
  else
    stap_log(LOG_ERR,
             "stap plugin: group %s: Staprun %s: %s. Install it with "
             "`apt-get install systemtap-runtime' or set the Staprun option.",
             g->cfg.name, g->staprun, why);
  return false;
}

static bool module_ok(struct group *g) {
  char why[768];
  int fd;
  enum config_trust t =
      config_open_trusted(g->cfg.module, O_PATH, &fd, why, sizeof(why));
  if (t == CONFIG_TRUST_OK) {
    close(fd);
    return true;
  }
  if (t == CONFIG_TRUST_REFUSED || t == CONFIG_TRUST_ERROR)
    stap_log(LOG_ERR,
             "stap plugin: group %s: module %s: %s. Not loaded: whoever can "
             "change it could run anything in the kernel.",
             g->cfg.name, g->cfg.module, why);
  else
    stap_log(LOG_ERR,
             "stap plugin: group %s: module %s: %s. Build it with `make "
             "modules KVER=%s' and `make install', or set the group's "
             "Module option.",
             g->cfg.name, g->cfg.module, why, g->kernel_release);
  return false;
}

/* Checked before every start rather than once, so that fixing a file heals
 * the group at its next retry without restarting collectd. */
static bool ready_to_start(struct group *g) {
  if (!staprun_ok(g) || !module_ok(g))
    return false;
  char why[1024];
  if (config_check_params(&g->cfg, why, sizeof(why)) != 0) {
    stap_log(LOG_ERR, "stap plugin: group %s: %s. The module is not loaded.",
             g->cfg.name, why);
    return false;
  }
  return true;
}

/* ---- A module left loaded --------------------------------------------------
 */

/* Whether the kernel's module list names the group's module. False when it
 * cannot be read: a kernel without module support has nothing left. */
static bool module_loaded(const struct group *g) {
  FILE *f = fopen(g->proc_modules, "re");
  if (f == NULL)
    return false;
  size_t n = strlen(g->module_name);
  char line[512];
  bool found = false, line_start = true;
  while (!found && fgets(line, sizeof(line), f) != NULL) {
    found =
        line_start && strncmp(line, g->module_name, n) == 0 && line[n] == ' ';
    line_start = strchr(line, '\n') != NULL;
  }
  fclose(f);
  return found;
}

static void on_detach_line(void *ctx, const char *line, size_t len,
                           bool truncated) {
  struct group *g = ctx;
  (void)truncated;
  char shown[640];
  record_escape(line, len > 400 ? 400 : len, shown, sizeof(shown));
  if (len > 0)
    limited_log(g, LOG_INFO, "staprun -d: %s", shown);
}

/* Runs `staprun -d NAME' the way staprun itself is run, waits at most
 * StopTimeout (then kills it, and gives up KILL_WAIT_MS later), and logs
 * what it printed and how it ended. */
static void run_detach(struct group *g) {
  char *argv[] = {g->staprun, "-d", g->module_name, NULL};
  struct child c;
  int rc = child_spawn(&c, g->staprun, argv, clean_env);
  if (rc != 0) {
    stap_log(LOG_ERR, "stap plugin: group %s: cannot start %s -d: %s",
             g->cfg.name, g->staprun, strerror(-rc));
    return;
  }
  struct channel out, err;
  channel_init(&out, c.out_fd);
  channel_init(&err, c.err_fd);
  uint64_t started = now_ms(), killed_at = 0;
  while (!(c.exited && out.eof && err.eof)) {
    uint64_t now = now_ms();
    if (killed_at == 0 && now - started >= g->stop_timeout_ms) {
      child_kill(&c);
      killed_at = now;
    }
    if (killed_at != 0 && now - killed_at >= KILL_WAIT_MS)
      break;
    struct pollfd p[3] = {
        {.fd = out.eof ? -1 : out.fd, .events = POLLIN},
        {.fd = err.eof ? -1 : err.fd, .events = POLLIN},
        {.fd = c.status_fd, .events = POLLIN},
    };
    poll(p, 3, 100);
    if (p[0].revents && channel_read(&out, on_detach_line, g) < 0)
      out.eof = true;
    if (p[1].revents && channel_read(&err, on_detach_line, g) < 0)
      err.eof = true;
    if (p[2].revents || c.status_fd < 0)
      child_read_status(&c);
  }
  char how[256];
  child_describe(&c, how, sizeof(how));
  stap_log(killed_at ? LOG_WARNING : LOG_INFO,
           "stap plugin: group %s: `%s -d %s' %s%s", g->cfg.name, g->staprun,
           g->module_name, c.exited ? how : "did not end",
           killed_at ? " (killed after StopTimeout)" : "");
  child_close(&c);
}

/* A module of the group's name still loaded (its stapio was killed, or
 * collectd was) makes the next start fail with "File exists": it is
 * detached and removed first. */
static void detach_leftover(struct group *g) {
  if (!module_loaded(g))
    return;
  stap_log(LOG_NOTICE,
           "stap plugin: group %s: module %s is still loaded (left behind by "
           "a staprun or collectd that was killed); detaching and removing "
           "it with `%s -d %s' before the start",
           g->cfg.name, g->module_name, g->staprun, g->module_name);
  run_detach(g);
  if (module_loaded(g))
    stap_log(LOG_ERR,
             "stap plugin: group %s: module %s is still loaded after `%s -d "
             "%s'; the start will fail with \"File exists\". Remove it by "
             "hand: `staprun -d %s' or `rmmod %s'.",
             g->cfg.name, g->module_name, g->staprun, g->module_name,
             g->module_name, g->module_name);
  else
    stap_log(LOG_NOTICE,
             "stap plugin: group %s: module %s detached and removed",
             g->cfg.name, g->module_name);
}

/* ---- One staprun run
 * --------------------------------------------------------- */

static void build_command(struct group *g, char *words, size_t size,
                          char *argv[], size_t max_argv) {
  size_t argc = 0, used = 0;
#define WORD(...)                                                              \
  do {                                                                         \
    int n_ = snprintf(words + used, size - used, __VA_ARGS__);                 \
    if (n_ < 0 || (size_t)n_ >= size - used || argc + 1 >= max_argv)           \
      break;                                                                   \
    argv[argc++] = words + used;                                               \
    used += (size_t)n_ + 1;                                                    \
  } while (0)
  WORD("%s", g->staprun);
  WORD("-b");
  WORD("%zu", g->cfg.buffer_mib);
  WORD("%s", g->cfg.module);
  WORD("interval_ms=%llu", (unsigned long long)g->cfg.interval_ms);
  for (size_t i = 0; i < g->cfg.nparams; i++)
    WORD("%s=%s", g->cfg.params[i].name, g->cfg.params[i].value);
#undef WORD
  argv[argc] = NULL;
}

/* Where a run is, for the loop that watches it. */
struct run {
  struct channel out, err;
  uint64_t started, stop_at, killed_at, exited_at;
  bool stopping, killed, pid_logged, hello_late_logged;
};

/* Once per run: a module that has not said hello two intervals after its
 * start is not talking, and nothing else would say so. */
static void check_hello(struct group *g, struct run *r, uint64_t now) {
  uint64_t due = 2 * g->cfg.interval_ms;
  if (due < g->hello_min_ms)
    due = g->hello_min_ms;
  if (r->hello_late_logged || g->batch.in_session || g->refused ||
      r->stopping || g->child.exited || now - r->started < due)
    return;
  r->hello_late_logged = true;
  stap_log(LOG_WARNING,
           "stap plugin: group %s: module %s has not said hello %.1f s after "
           "its start. Is Module a collectd-stap module of this group (its "
           "first line must be `hello %d %s')? Is staprun stuck (pid %d: "
           "see its own messages above, `staprun: ...')?",
           g->cfg.name, g->cfg.module, (double)due / 1000.0,
           RECORD_PROTOCOL_VERSION, g->cfg.name, (int)g->child.pid);
}

/* SIGTERM (the module's end probes run, then it is unloaded), SIGKILL after
 * StopTimeout, and no endless wait after that. Returns false to give up. */
static bool stop_child(struct group *g, struct run *r, uint64_t now) {
  if (!r->stopping && !g->child.exited &&
      (atomic_load(&g->stop) || g->refused || g->out_of_step)) {
    child_terminate(&g->child);
    r->stopping = true;
    r->stop_at = now;
  }
  if (r->stopping && !r->killed && !g->child.exited &&
      now - r->stop_at >= g->stop_timeout_ms) {
    stap_log(LOG_WARNING,
             "stap plugin: group %s: staprun (pid %d) did not stop within "
             "StopTimeout (%llu ms); killing it. The module may still be "
             "loaded: check `lsmod | grep collectd_stap'.",
             g->cfg.name, (int)g->child.pid,
             (unsigned long long)g->stop_timeout_ms);
    child_kill(&g->child);
    r->killed = true;
    r->killed_at = now;
  }
  if (r->killed && !g->child.exited && now - r->killed_at >= KILL_WAIT_MS) {
    stap_log(LOG_ERR,
             "stap plugin: group %s: staprun (pid %d) has not ended %d s "
             "after SIGKILL (stuck in the kernel?); leaving it",
             g->cfg.name, (int)g->child.pid, KILL_WAIT_MS / 1000);
    return false;
  }
  return true;
}

/* Reads, watches and stops the child until it has ended and its pipes are
 * drained (or it is given up). */
static void watch(struct group *g, struct run *r) {
  for (;;) {
    struct pollfd p[4] = {
        {.fd = r->out.eof ? -1 : r->out.fd, .events = POLLIN},
        {.fd = r->err.eof ? -1 : r->err.fd, .events = POLLIN},
        {.fd = g->child.status_fd, .events = POLLIN},
        {.fd = g->wake[0], .events = POLLIN},
    };
    int timeout = (r->stopping || g->child.exited) ? 100 : 1000;
    if (poll(p, 4, timeout) < 0 && errno != EINTR) {
      stap_log(LOG_ERR, "stap plugin: group %s: poll: %s", g->cfg.name,
               strerror(errno));
      sleep_or_stop(g, 100);
    }
    if (p[3].revents)
      drain_wake(g);
    if (p[0].revents && channel_read(&r->out, on_stdout_line, g) < 0)
      r->out.eof = true;
    if (p[1].revents && channel_read(&r->err, on_stderr_line, g) < 0)
      r->err.eof = true;
    if (p[2].revents || g->child.status_fd < 0)
      child_read_status(&g->child);

    if (!r->pid_logged && g->child.pid > 0) {
      r->pid_logged = true;
      stap_log(LOG_INFO, "stap plugin: group %s: started %s (pid %d) on %s",
               g->cfg.name, g->staprun, (int)g->child.pid, g->cfg.module);
    }
    uint64_t now = now_ms();
    check_hello(g, r, now);
    if (!stop_child(g, r, now))
      return;
    if (g->child.exited) {
      if (r->exited_at == 0)
        r->exited_at = now;
      if ((r->out.eof && r->err.eof) || now - r->exited_at >= EXIT_GRACE_MS)
        break;
    }
  }
  /* Take what is left in the pipes (e.g. the end probe's final batch). */
  while (!r->out.eof && channel_read(&r->out, on_stdout_line, g) == 0 &&
         now_ms() - r->exited_at < EXIT_GRACE_MS)
    ;
  while (!r->err.eof && channel_read(&r->err, on_stderr_line, g) == 0 &&
         now_ms() - r->exited_at < EXIT_GRACE_MS)
    ;
}

static void report_end(struct group *g) {
  char how[256];
  if (g->child.exited)
    child_describe(&g->child, how, sizeof(how));
  else
    snprintf(how, sizeof(how), "did not end and was left behind");
  if (atomic_load(&g->stop)) {
    stap_log(LOG_INFO, "stap plugin: group %s: staprun stopped (%s)",
             g->cfg.name, how);
    return;
  }
  char said[480], hint[400];
  what_staprun_said(g, said, sizeof(said), hint, sizeof(hint));
  if (g->child.exec_errno != 0)
    snprintf(hint, sizeof(hint),
             "check the Staprun option (is systemtap-runtime installed?)");
  stap_log(LOG_ERR,
           "stap plugin: group %s: staprun on %s %s%s%s%s%s (kernel %s)",
           g->cfg.name, g->cfg.module, how, said[0] ? "; it said: " : "", said,
           hint[0] ? "; " : "", hint, g->kernel_release);
}

/* One staprun run, from the checks to reaped. Returns how long it ran (ms). */
static uint64_t run_once(struct group *g) {
  char words[8192];
  /* staprun, -b, N, the module, interval_ms, the Params, NULL. */
  char *argv[CONFIG_MAX_PARAMS + 6];
  build_command(g, words, sizeof(words), argv, sizeof(argv) / sizeof(argv[0]));

  g->refused = false;
  g->lost_in_a_row = 0;
  g->out_of_step = false;
  g->nerrors = 0;
  uint64_t started = now_ms();
  if (!ready_to_start(g))
    return 0;
  detach_leftover(g);
  if (atomic_load(&g->stop))
    return 0;
  int rc = child_spawn(&g->child, g->staprun, argv, clean_env);
  if (rc != 0) {
    stap_log(LOG_ERR, "stap plugin: group %s: cannot start %s: %s", g->cfg.name,
             g->staprun, strerror(-rc));
    return 0;
  }
  count(g, &g->stats.starts, 1);

  struct run r = {.started = now_ms()};
  channel_init(&r.out, g->child.out_fd);
  channel_init(&r.err, g->child.err_fd);
  watch(g, &r);

  set_running(g, false);
  if (batch_session_end(&g->batch)) {
    count(g, &g->stats.discarded, 1);
    limited_log(g, LOG_WARNING,
                "batch discarded: the module's output ended inside it");
  }
  report_end(g);
  child_close(&g->child);
  return now_ms() - started;
}

static void *group_main(void *arg) {
  struct group *g = arg;
  uint64_t delay = g->restart_delay_ms;

  while (!atomic_load(&g->stop)) {
    uint64_t ran = run_once(g);
    if (atomic_load(&g->stop))
      break;
    if (g->refused)
      delay = g->restart_delay_max_ms;
    else if (ran >= HEALTHY_RUN_MS)
      delay = g->restart_delay_ms;
    stap_log(LOG_NOTICE, "stap plugin: group %s: restarting staprun in %.1f s",
             g->cfg.name, (double)delay / 1000.0);
    if (sleep_or_stop(g, delay))
      break;
    count(g, &g->stats.restarts, 1);
    delay = delay * 2 > g->restart_delay_max_ms ? g->restart_delay_max_ms
                                                : delay * 2;
  }
  /* Nothing of g is touched after this. */
  atomic_store(&g->done, true);
  return NULL;
}

int group_start(struct group *g, group_thread_create_fn create) {
  char name[16];
  snprintf(name, sizeof(name), "stap/%.10s", g->cfg.name);
  int rc = create(&g->thread, group_main, g, name);
  if (rc != 0)
    return rc;
  g->thread_started = true;
  return 0;
}

void group_request_stop(struct group *g) {
  atomic_store(&g->stop, true);
  char c = 1;
  ssize_t unused = write(g->wake[1], &c, 1);
  (void)unused;
}

bool group_join(struct group *g, uint64_t timeout_ms) {
  if (!g->thread_started)
    return true;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)(timeout_ms / 1000);
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  if (pthread_timedjoin_np(g->thread, NULL, &until) == 0) {
    g->thread_started = false;
    return true;
  }
  stap_log(LOG_ERR,
           "stap plugin: group %s: its thread has not ended %.1f s after it "
           "was asked to stop (staprun stuck in the kernel, or collectd "
           "blocking a dispatch); collectd's shutdown goes on without it",
           g->cfg.name, (double)timeout_ms / 1000.0);
  pthread_detach(g->thread);
  g->thread_started = false;
  g->abandoned = true;
  return false;
}
