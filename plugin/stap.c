/* collectd glue: configuration, one supervised group per <Group>, dispatch of
 * values and notifications, and the plugin's own health values. */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "config.h"
#include "dispatch.h"
#include "flows.h"
#include "group.h"
#include "log.h"

#include <stdarg.h>
#include <sys/utsname.h>

/* Written by the config and init callbacks, which collectd runs before any
 * read thread, and read by the read callbacks, which collectd stops before
 * shutdown. Each group's mutable state is guarded by its own lock. */
static struct plugin_config stap_config;
static bool stap_configured;

/* A WARNING or FAILURE on a group's values asks its module which flows are
 * behind it, at most once per FLOW_REPORT_MIN_GAP per group: an alert storm
 * must not turn into a storm of procfs reads and notifications. */
#define FLOW_REPORT_MIN_GAP TIME_T_TO_CDTIME_T(30)
#define FLOW_REPORT_TINST "retransmits-flows"
/* How long shutdown waits for flow reports under way. */
#define FLOW_REPORT_DRAIN_S 5

/* The notification callback runs on any of collectd's threads, at any time,
 * shutdown included. table_lock protects the group table (stap_groups,
 * stap_ngroups: init publishes it, shutdown takes it away first thing, so
 * no report starts once shutdown began), flow_last (when each group last
 * reported its flows) and flow_reports (reports under way, which shutdown
 * waits for; table_idle is signalled when it drops to 0). */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t table_idle = PTHREAD_COND_INITIALIZER;
static struct group *stap_groups;
static size_t stap_ngroups;
static cdtime_t *flow_last;
static unsigned flow_reports;

void stap_log(int level, const char *format, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, format);
  vsnprintf(msg, sizeof(msg), format, ap);
  va_end(ap);
  plugin_log(level, "%s", msg);
}

static void set_names(value_list_t *vl, const char *pinst, const char *type,
                      const char *tinst) {
  sstrncpy(vl->plugin, "stap", sizeof(vl->plugin));
  sstrncpy(vl->plugin_instance, pinst, sizeof(vl->plugin_instance));
  sstrncpy(vl->type, type, sizeof(vl->type));
  sstrncpy(vl->type_instance, tinst, sizeof(vl->type_instance));
}

/* What each group thread keeps between its values: the last type looked
 * up and collectd's data set for it (a module prints runs of one type, and
 * plugin_get_ds walks an AVL tree of string compares), and a value list
 * whose constant fields are set once (VALUE_LIST_INIT and sstrncpy zero
 * about 700 bytes per value). Data sets live as long as collectd; a group
 * thread dispatches nothing once shutdown began. */
struct dispatch_cache {
  bool ready;
  char type[DATA_MAX_NAME_LEN];
  const data_set_t *ds;
  value_list_t vl;
};
static _Thread_local struct dispatch_cache dispatch_cache;

static const data_set_t *cached_ds(struct dispatch_cache *c, const char *type) {
  if (c->ds == NULL || strcmp(c->type, type) != 0) {
    c->ds = plugin_get_ds(type);
    sstrncpy(c->type, type, sizeof(c->type));
  }
  return c->ds;
}

/* Names are at most RECORD_NAME_SIZE - 1 bytes: they fit collectd's. */
static void put_name(char *dst, const char *src) {
  memcpy(dst, src, strlen(src) + 1);
}

/* The type's refusal of r's values, or NULL. */
static const char *check_ds(const data_set_t *ds, const struct record *r) {
  if (ds == NULL)
    return "the type is not in any TypesDB file; add "
           "/usr/share/collectd/stap.types.db to TypesDB";
  if (ds->ds_num != r->nvalues)
    return "the number of values differs from the type's data sources";
  int want = r->kind == RECORD_DERIVE ? DS_TYPE_DERIVE : DS_TYPE_GAUGE;
  for (size_t i = 0; i < ds->ds_num; i++)
    if (ds->ds[i].type != want)
      return r->kind == RECORD_DERIVE
                 ? "the type's data sources are not all DERIVE"
                 : "the type's data sources are not all GAUGE";
  return NULL;
}

const char *dispatch_value(const struct group_config *g, const struct record *r,
                           const int64_t *derive) {
  struct dispatch_cache *c = &dispatch_cache;
  const char *why = check_ds(cached_ds(c, r->type), r);
  if (why != NULL)
    return why;

  value_t v[RECORD_MAX_VALUES];
  for (size_t i = 0; i < r->nvalues; i++) {
    if (r->kind == RECORD_DERIVE)
      v[i].derive = derive[i];
    else
      v[i].gauge = r->gauge[i];
  }
  value_list_t *vl = &c->vl;
  if (!c->ready) {
    *vl = (value_list_t)VALUE_LIST_INIT;
    sstrncpy(vl->host, hostname_g, sizeof(vl->host));
    sstrncpy(vl->plugin, "stap", sizeof(vl->plugin));
    c->ready = true;
  }
  vl->values = v;
  vl->values_len = r->nvalues;
  vl->interval = MS_TO_CDTIME_T(g->interval_ms);
  /* One time for the whole batch, rather than collectd reading the clock
   * for each value. */
  vl->time = r->time.tv_sec != 0 ? TIMESPEC_TO_CDTIME_T(&r->time) : 0;
  put_name(vl->plugin_instance, r->plugin_instance);
  put_name(vl->type, r->type);
  put_name(vl->type_instance, r->type_instance);
  if (plugin_dispatch_values(vl) != 0)
    return "collectd refused it (see the log above)";
  return NULL;
}

void dispatch_notification(const struct group_config *g,
                           const struct record *r) {
  (void)g;
  notification_t n = {
      .severity = r->severity == RECORD_FAILURE   ? NOTIF_FAILURE
                  : r->severity == RECORD_WARNING ? NOTIF_WARNING
                                                  : NOTIF_OKAY,
      .time = cdtime(),
  };
  sstrncpy(n.host, hostname_g, sizeof(n.host));
  sstrncpy(n.plugin, "stap", sizeof(n.plugin));
  sstrncpy(n.plugin_instance, r->plugin_instance, sizeof(n.plugin_instance));
  sstrncpy(n.type, r->type, sizeof(n.type));
  sstrncpy(n.type_instance, r->type_instance, sizeof(n.type_instance));
  sstrncpy(n.message, r->text, sizeof(n.message));
  plugin_dispatch_notification(&n);
}

static void dispatch_health(const struct group *g, const char *type,
                            const char *tinst, value_t v) {
  value_list_t vl = VALUE_LIST_INIT;
  vl.values = &v;
  vl.values_len = 1;
  set_names(&vl, g->cfg.name, type, tinst);
  plugin_dispatch_values(&vl);
}

/* The group's own health, so an operator can graph and alert on a module
 * that is down, restarting or printing garbage. */
static int stap_read(user_data_t *ud) {
  struct group *g = ud->data;
  struct group_stats s;
  group_stats_get(g, &s);
  dispatch_health(g, "stap_running", "", (value_t){.gauge = s.running});
  const struct {
    const char *name;
    uint64_t value;
  } events[] = {
      {"restarts", s.restarts},   {"batches", s.batches},
      {"bad_lines", s.bad_lines}, {"discarded_batches", s.discarded},
      {"gaps", s.gaps},           {"dropped_series", s.series_dropped},
      {"decreases", s.decreases}, {"duplicate_series", s.duplicates},
  };
  for (size_t i = 0; i < STATIC_ARRAY_SIZE(events); i++)
    dispatch_health(g, "stap_events", events[i].name,
                    (value_t){.derive = (derive_t)events[i].value});
  return 0;
}

/* Follow-up notification naming the flows behind an alert on retransmits:
 * the module keeps the top flows of its last intervals and serves them on
 * its procfs control file (modules/PROTOCOL.md, "Control files"). */
/* Whether n is an alert this plugin answers: WARNING or FAILURE on a stap
 * retransmits value of this host (the procfs file describes this host's
 * flows, not those of a host whose values arrive over the network). */
static bool flow_alert(const notification_t *n) {
  return strcmp(n->plugin, "stap") == 0 &&
         (n->severity == NOTIF_WARNING || n->severity == NOTIF_FAILURE) &&
         strncmp(n->type_instance, "retransmits", strlen("retransmits")) == 0 &&
         strcmp(n->type_instance, FLOW_REPORT_TINST) != 0 &&
         strcmp(n->host, hostname_g) == 0;
}

/* Under table_lock: whether the group n is about is due a report; if so it
 * is counted as under way (flow_report_done ends it). */
static bool flow_report_begin(const notification_t *n, cdtime_t now) {
  bool due = false;
  pthread_mutex_lock(&table_lock);
  for (size_t i = 0; flow_last != NULL && i < stap_ngroups; i++) {
    if (strcmp(stap_groups[i].cfg.name, n->plugin_instance) != 0)
      continue;
    due = flow_last[i] == 0 || now - flow_last[i] >= FLOW_REPORT_MIN_GAP;
    if (due) {
      flow_last[i] = now;
      flow_reports++;
    }
    break;
  }
  pthread_mutex_unlock(&table_lock);
  return due;
}

static void flow_report_done(void) {
  pthread_mutex_lock(&table_lock);
  if (--flow_reports == 0)
    pthread_cond_broadcast(&table_idle);
  pthread_mutex_unlock(&table_lock);
}

/* Reads the module's top flows and dispatches the follow-up notification. */
static void flow_report(const notification_t *n, cdtime_t now) {
  char path[PATH_MAX + 128];
  ssnprintf(path, sizeof(path), "%s/collectd_stap_%s/top_flows",
            stap_config.procfs_dir, n->plugin_instance);
  struct flow flows[FLOWS_MAX];
  int nflows = flows_read(path, flows, FLOWS_MAX);
  if (nflows < 0) {
    WARNING("stap plugin: group %s: cannot read the top flows from %s: %s",
            n->plugin_instance, path, STRERROR(-nflows));
    return;
  }

  notification_t f = {.severity = n->severity, .time = now};
  sstrncpy(f.host, n->host, sizeof(f.host));
  sstrncpy(f.plugin, "stap", sizeof(f.plugin));
  sstrncpy(f.plugin_instance, n->plugin_instance, sizeof(f.plugin_instance));
  sstrncpy(f.type, n->type, sizeof(f.type));
  sstrncpy(f.type_instance, FLOW_REPORT_TINST, sizeof(f.type_instance));
  if (nflows == 0) {
    sstrncpy(f.message, "top flows by retransmits: none in the last intervals",
             sizeof(f.message));
  } else {
    size_t used = (size_t)ssnprintf(f.message, sizeof(f.message),
                                    "top flows by retransmits:");
    for (int k = 0; k < nflows; k++) {
      char one[160];
      ssnprintf(one, sizeof(one), "%s %s <-> %s %llu", k ? "," : "",
                flows[k].local, flows[k].remote,
                (unsigned long long)flows[k].count);
      if (used + strlen(one) >= sizeof(f.message) - 4) {
        sstrncpy(f.message + used, " ...", sizeof(f.message) - used);
        break;
      }
      sstrncpy(f.message + used, one, sizeof(f.message) - used);
      used += strlen(one);
    }
    /* The message holds what fits; every flow is in the meta data. */
    for (int k = 0; k < nflows; k++) {
      char name[16], value[160];
      ssnprintf(name, sizeof(name), "flow%d", k + 1);
      ssnprintf(value, sizeof(value), "%s %s %llu", flows[k].local,
                flows[k].remote, (unsigned long long)flows[k].count);
      plugin_notification_meta_add_string(&f, name, value);
    }
  }
  INFO("stap plugin: group %s: %s", n->plugin_instance, f.message);
  plugin_dispatch_notification(&f);
  if (f.meta != NULL)
    plugin_notification_meta_free(f.meta);
}

static int stap_notification(const notification_t *n,
                             user_data_t __attribute__((unused)) * ud) {
  cdtime_t now = cdtime();
  if (!flow_alert(n) || !flow_report_begin(n, now))
    return 0;
  flow_report(n, now);
  flow_report_done();
  return 0;
}

static int stap_config_cb(oconfig_item_t *ci) {
  if (!stap_configured) {
    config_defaults(&stap_config);
    stap_configured = true;
  }
  config_parse(&stap_config, ci);
  /* Errors were logged and the broken groups left out; the rest runs. */
  return 0;
}

static int stap_init(void) {
  if (!stap_configured) {
    NOTICE("stap plugin: no <Plugin stap> block; no probe group is enabled.");
    return 0;
  }
  pthread_mutex_lock(&table_lock);
  bool running = stap_groups != NULL;
  pthread_mutex_unlock(&table_lock);
  if (running)
    return 0;

  struct utsname u;
  const char *release = uname(&u) == 0 ? u.release : "unknown";
  config_finish(&stap_config, CDTIME_T_TO_MS(plugin_get_interval()), release);
  if (stap_config.ngroups == 0) {
    WARNING("stap plugin: no probe group is enabled; add a <Group> block.");
    return 0;
  }

  /* Filled before it is published: the notification callback sees a table
   * of started groups only. */
  struct group *groups = calloc(stap_config.ngroups, sizeof(*groups));
  cdtime_t *last = calloc(stap_config.ngroups, sizeof(*last));
  if (groups == NULL || last == NULL) {
    free(groups);
    free(last);
    ERROR("stap plugin: out of memory.");
    return -1;
  }
  size_t started = 0;
  for (size_t i = 0; i < stap_config.ngroups; i++) {
    const struct group_config *gc = &stap_config.groups[i];
    struct group *g = &groups[started];
    if (group_init(g, &stap_config, gc, release) != 0) {
      ERROR("stap plugin: group %s: cannot allocate its state; not started.",
            gc->name);
      continue;
    }
    if (group_start(g, plugin_thread_create) != 0) {
      ERROR("stap plugin: group %s: cannot start its thread; not started.",
            gc->name);
      group_destroy(g);
      continue;
    }
    started++;

    char name[DATA_MAX_NAME_LEN];
    ssnprintf(name, sizeof(name), "stap/%s", gc->name);
    plugin_register_complex_read(NULL, name, stap_read,
                                 MS_TO_CDTIME_T(gc->interval_ms),
                                 &(user_data_t){.data = g});
    INFO("stap plugin: group %s: module %s, interval %.3f s", gc->name,
         gc->module, (double)gc->interval_ms / 1000.0);
  }
  pthread_mutex_lock(&table_lock);
  stap_groups = groups;
  stap_ngroups = started;
  flow_last = last;
  pthread_mutex_unlock(&table_lock);
  return 0;
}

/* Takes the group table away from the notification callback, so that no
 * flow report starts any more, and lets the ones under way finish (they
 * read a procfs file and dispatch one notification), briefly. */
static void take_table(struct group **groups, size_t *ngroups) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += FLOW_REPORT_DRAIN_S;
  pthread_mutex_lock(&table_lock);
  *groups = stap_groups;
  *ngroups = stap_ngroups;
  stap_groups = NULL;
  stap_ngroups = 0;
  free(flow_last);
  flow_last = NULL;
  while (flow_reports > 0 &&
         pthread_cond_timedwait(&table_idle, &table_lock, &until) == 0)
    ;
  if (flow_reports > 0)
    WARNING("stap plugin: %u top-flows report(s) still under way after %d s; "
            "shutdown goes on",
            flow_reports, FLOW_REPORT_DRAIN_S);
  pthread_mutex_unlock(&table_lock);
}

static int stap_shutdown(void) {
  struct group *groups;
  size_t ngroups;
  take_table(&groups, &ngroups);

  /* Ask every group first so their stop timeouts run side by side; each
   * join is bounded, so a staprun stuck in the kernel cannot hang collectd.
   * A group given up on keeps its memory (its thread may still use it). */
  for (size_t i = 0; i < ngroups; i++)
    group_request_stop(&groups[i]);
  cdtime_t until = cdtime() + MS_TO_CDTIME_T(stap_config.stop_timeout_ms +
                                             GROUP_JOIN_GRACE_MS);
  bool abandoned = false;
  for (size_t i = 0; i < ngroups; i++) {
    cdtime_t now = cdtime();
    uint64_t left = now < until ? CDTIME_T_TO_MS(until - now) : 0;
    if (group_join(&groups[i], left))
      group_destroy(&groups[i]);
    else
      abandoned = true;
  }
  if (!abandoned)
    free(groups);
  config_free(&stap_config);
  stap_configured = false;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config("stap", stap_config_cb);
  plugin_register_init("stap", stap_init);
  plugin_register_shutdown("stap", stap_shutdown);
  plugin_register_notification("stap", stap_notification, NULL);
}
