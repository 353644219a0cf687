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
#define HEALTHY_RUN_MS 60000

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
     "a module of that name is already loaded, perhaps left behind by an "
     "earlier collectd: unload it with `staprun -d MODULE' or `rmmod MODULE'"},
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

int group_init(struct group *g, const struct plugin_config *pcfg,
               const struct group_config *cfg, const char *kernel_release) {
  memset(g, 0, sizeof(*g));
  g->cfg = *cfg;
  snprintf(g->staprun, sizeof(g->staprun), "%s", pcfg->staprun);
  g->restart_delay_ms = pcfg->restart_delay_ms;
  g->restart_delay_max_ms = pcfg->restart_delay_max_ms;
  g->stop_timeout_ms = pcfg->stop_timeout_ms;
  snprintf(g->kernel_release, sizeof(g->kernel_release), "%s", kernel_release);
  g->wake[0] = g->wake[1] = -1;
  g->child.out_fd = g->child.err_fd = g->child.status_fd = g->child.ctl_fd = -1;
  atomic_init(&g->stop, false);
  if (pthread_mutex_init(&g->lock, NULL) != 0)
    return -1;
  if (pipe2(g->wake, O_CLOEXEC | O_NONBLOCK) != 0)
    goto fail;
  if (batch_init(&g->batch, cfg->name, cfg->max_batch_records) != 0)
    goto fail;
  g->offsets = offsets_new(cfg->max_series);
  if (g->offsets == NULL)
    goto fail;
  return 0;
fail:
  group_destroy(g);
  return -1;
}

void group_destroy(struct group *g) {
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

/* The offset-corrected values of a derive record. Returns false if one of
 * its series is beyond MaxSeries: the record is not dispatched. */
static bool counters_of(struct group *g, const struct record *r,
                        int64_t values[]) {
  char key[3 * RECORD_NAME_SIZE + 24];
  for (size_t v = 0; v < r->nvalues; v++) {
    snprintf(key, sizeof(key), "%s/%s/%s#%zu", r->plugin_instance, r->type,
             r->type_instance, v);
    struct offsets_step step;
    if (offsets_update(g->offsets, key, r->derive[v], &step) != 0) {
      count(g, &g->stats.series_dropped, 1);
      limited_log(g, LOG_WARNING,
                  "more than MaxSeries (%zu) counter series; %s is not "
                  "dispatched. Raise MaxSeries or lower the module's caps.",
                  g->cfg.max_series, key);
      return false;
    }
    if (step.decreased) {
      count(g, &g->stats.decreases, 1);
      limited_log(g, LOG_WARNING,
                  "counter %s went back from %lld to %lld within one module "
                  "session (not a restart); it stays at %lld until the "
                  "module's value is back at %lld",
                  key, (long long)step.previous, (long long)r->derive[v],
                  (long long)step.value, (long long)step.high);
    }
    values[v] = step.value;
  }
  return true;
}

static void dispatch_batch(struct group *g) {
  for (size_t i = 0; i < g->batch.n; i++) {
    const struct record *r = &g->batch.records[i];
    if (r->kind == RECORD_NOTIFY) {
      dispatch_notification(&g->cfg, r);
      continue;
    }
    int64_t values[RECORD_MAX_VALUES] = {0};
    if (r->kind == RECORD_DERIVE && !counters_of(g, r, values))
      continue;
    const char *why = dispatch_value(&g->cfg, r, values);
    if (why != NULL)
      limited_log(g, LOG_WARNING, "value %s/%s/%s not dispatched: %s",
                  r->plugin_instance, r->type, r->type_instance, why);
  }
}

static void discarded(struct group *g, const struct batch_result *res) {
  count(g, &g->stats.discarded, 1);
  if (res->record == NULL) {
    limited_log(g, LOG_WARNING, "batch discarded: %s", res->why);
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

static void on_stdout_line(void *ctx, const char *line, size_t len,
                           bool truncated) {
  struct group *g = ctx;
  struct batch_result res;

  if (truncated) {
    /* Feed it anyway so an open batch is tainted. */
    batch_feed(&g->batch, line, RECORD_LINE_MAX + 1, &res);
    count(g, &g->stats.bad_lines, 1);
    limited_log(g, LOG_WARNING,
                "bad line from the module (longer than %d bytes): %.60s...",
                RECORD_LINE_MAX, line);
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
    stap_log(LOG_INFO, "stap plugin: group %s: module says: %s", g->cfg.name,
             res.record->text);
    break;
  case BATCH_COMPLETE:
    dispatch_batch(g);
    count(g, &g->stats.batches, 1);
    if (res.gaps > 0) {
      count(g, &g->stats.gaps, res.gaps);
      limited_log(g, LOG_WARNING,
                  "%llu batch(es) missing before batch %llu (module output "
                  "lost or the module was stalled)",
                  (unsigned long long)res.gaps,
                  (unsigned long long)g->batch.last_seq);
    }
    break;
  case BATCH_BAD_LINE:
    count(g, &g->stats.bad_lines, 1);
    limited_log(g, LOG_WARNING, "bad line from the module (%s): %.*s", res.why,
                (int)(len > 120 ? 120 : len), line);
    break;
  case BATCH_DISCARDED:
    discarded(g, &res);
    break;
  case BATCH_REFUSED:
    g->refused = true;
    if (res.version != RECORD_PROTOCOL_VERSION)
      stap_log(LOG_ERR,
               "stap plugin: group %s: module %s speaks record protocol "
               "version %lu, this plugin speaks version %d. Rebuild the "
               "module from the same collectd-stap release (make modules) "
               "and install it. Stopping it.",
               g->cfg.name, g->cfg.module, res.version,
               RECORD_PROTOCOL_VERSION);
    else
      stap_log(LOG_ERR,
               "stap plugin: group %s: module %s says it is group \"%s\". "
               "Point <Group \"%s\">'s Module at collectd_stap_%s.ko. "
               "Stopping it.",
               g->cfg.name, g->cfg.module, res.group, g->cfg.name, g->cfg.name);
    break;
  }
}

static void on_stderr_line(void *ctx, const char *line, size_t len,
                           bool truncated) {
  struct group *g = ctx;
  (void)truncated;
  if (len == 0)
    return;
  int level = LOG_INFO;
  if (strncmp(line, "ERROR", 5) == 0) {
    level = LOG_ERR;
    snprintf(g->last_error, sizeof(g->last_error), "%.*s", (int)len, line);
  } else if (strncmp(line, "WARNING", 7) == 0) {
    level = LOG_WARNING;
  }
  limited_log(g, level, "staprun: %.*s", (int)(len > 400 ? 400 : len), line);
}

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
  WORD("%s", g->cfg.module);
  WORD("interval_ms=%llu", (unsigned long long)g->cfg.interval_ms);
  for (size_t i = 0; i < g->cfg.nparams; i++)
    WORD("%s=%s", g->cfg.params[i].name, g->cfg.params[i].value);
#undef WORD
  argv[argc] = NULL;
}

/* One staprun run, from spawn to reaped. Returns how long it ran (ms). */
static uint64_t run_once(struct group *g) {
  char words[8192];
  char *argv[CONFIG_MAX_PARAMS + 4];
  char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
  build_command(g, words, sizeof(words), argv, sizeof(argv) / sizeof(argv[0]));

  g->refused = false;
  g->last_error[0] = '\0';
  uint64_t started = now_ms();
  /* Checked here rather than once at start, so installing the missing file
   * heals the group at its next retry without restarting collectd. */
  if (access(g->staprun, X_OK) != 0) {
    stap_log(LOG_ERR,
             "stap plugin: group %s: Staprun %s: %s. Install it with "
             "`apt-get install systemtap-runtime' or set the Staprun option.",
             g->cfg.name, g->staprun, strerror(errno));
    return 0;
  }
  struct stat st;
  const char *missing = NULL;
  if (stat(g->cfg.module, &st) != 0)
    missing = strerror(errno);
  else if (!S_ISREG(st.st_mode))
    missing = "not a regular file";
  if (missing != NULL) {
    stap_log(LOG_ERR,
             "stap plugin: group %s: module %s: %s. Build it with `make "
             "modules KVER=%s' and `make install', or set the group's "
             "Module option.",
             g->cfg.name, g->cfg.module, missing, g->kernel_release);
    return 0;
  }
  int rc = child_spawn(&g->child, g->staprun, argv, envp);
  if (rc != 0) {
    stap_log(LOG_ERR, "stap plugin: group %s: cannot start %s: %s", g->cfg.name,
             g->staprun, strerror(-rc));
    return 0;
  }
  count(g, &g->stats.starts, 1);

  struct channel out, err;
  channel_init(&out, g->child.out_fd);
  channel_init(&err, g->child.err_fd);
  bool stopping = false, killed = false;
  uint64_t stop_at = 0, exited_at = 0;
  bool pid_logged = false;

  for (;;) {
    struct pollfd p[4] = {
        {.fd = out.eof ? -1 : out.fd, .events = POLLIN},
        {.fd = err.eof ? -1 : err.fd, .events = POLLIN},
        {.fd = g->child.status_fd, .events = POLLIN},
        {.fd = g->wake[0], .events = POLLIN},
    };
    int timeout = (stopping || g->child.exited) ? 100 : 1000;
    if (poll(p, 4, timeout) < 0 && errno != EINTR) {
      stap_log(LOG_ERR, "stap plugin: group %s: poll: %s", g->cfg.name,
               strerror(errno));
      sleep_or_stop(g, 100);
    }
    if (p[3].revents)
      drain_wake(g);
    if (p[0].revents && channel_read(&out, on_stdout_line, g) < 0)
      out.eof = true;
    if (p[1].revents && channel_read(&err, on_stderr_line, g) < 0)
      err.eof = true;
    if (p[2].revents || g->child.status_fd < 0)
      child_read_status(&g->child);

    if (!pid_logged && g->child.pid > 0) {
      pid_logged = true;
      stap_log(LOG_INFO, "stap plugin: group %s: started %s (pid %d) on %s",
               g->cfg.name, g->staprun, (int)g->child.pid, g->cfg.module);
    }

    uint64_t now = now_ms();
    if (!stopping && !g->child.exited &&
        (atomic_load(&g->stop) || g->refused)) {
      /* SIGTERM makes staprun run the module's end probes (the last batch)
       * and unload it. */
      child_terminate(&g->child);
      stopping = true;
      stop_at = now;
    }
    if (stopping && !killed && !g->child.exited &&
        now - stop_at >= g->stop_timeout_ms) {
      stap_log(LOG_WARNING,
               "stap plugin: group %s: staprun (pid %d) did not stop within "
               "StopTimeout (%llu ms); killing it. The module may still be "
               "loaded: check `lsmod | grep collectd_stap'.",
               g->cfg.name, (int)g->child.pid,
               (unsigned long long)g->stop_timeout_ms);
      child_kill(&g->child);
      killed = true;
    }
    if (g->child.exited) {
      if (exited_at == 0)
        exited_at = now;
      if ((out.eof && err.eof) || now - exited_at >= EXIT_GRACE_MS)
        break;
    }
  }
  /* Take what is left in the pipes (e.g. the end probe's final batch). */
  while (!out.eof && channel_read(&out, on_stdout_line, g) == 0 &&
         now_ms() - exited_at < EXIT_GRACE_MS)
    ;
  while (!err.eof && channel_read(&err, on_stderr_line, g) == 0 &&
         now_ms() - exited_at < EXIT_GRACE_MS)
    ;

  set_running(g, false);
  if (batch_session_end(&g->batch)) {
    count(g, &g->stats.discarded, 1);
    limited_log(g, LOG_WARNING,
                "batch discarded: the module's output ended "
                "inside it");
  }

  char how[256];
  child_describe(&g->child, how, sizeof(how));
  if (atomic_load(&g->stop)) {
    stap_log(LOG_INFO, "stap plugin: group %s: staprun stopped (%s)",
             g->cfg.name, how);
  } else {
    const char *hint = group_hint(g->last_error);
    if (g->child.exec_errno != 0)
      hint = "check the Staprun option (is systemtap-runtime installed?)";
    stap_log(
        LOG_ERR, "stap plugin: group %s: staprun on %s %s%s%s%s%s (kernel %s)",
        g->cfg.name, g->cfg.module, how, g->last_error[0] ? "; it said: " : "",
        g->last_error, hint ? "; " : "", hint ? hint : "", g->kernel_release);
  }
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

void group_join(struct group *g) {
  if (!g->thread_started)
    return;
  pthread_join(g->thread, NULL);
  g->thread_started = false;
}
