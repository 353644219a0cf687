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
 * read thread, and freed by shutdown after the read threads are gone: no lock
 * is needed. Each group's mutable state is guarded by its own lock. */
static struct plugin_config stap_config;
static bool stap_configured;
static struct group *stap_groups;
static size_t stap_ngroups;

/* A WARNING or FAILURE on a group's values asks its module which flows are
 * behind it, at most once per FLOW_REPORT_MIN_GAP per group: an alert storm
 * must not turn into a storm of procfs reads and notifications. */
#define FLOW_REPORT_MIN_GAP TIME_T_TO_CDTIME_T(30)
#define FLOW_REPORT_TINST "retransmits-flows"
static pthread_mutex_t flow_lock = PTHREAD_MUTEX_INITIALIZER;
/* Protected by flow_lock: when each group last reported its flows. */
static cdtime_t *flow_last;

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

const char *dispatch_value(const struct group_config *g, const struct record *r,
                           const int64_t *derive) {
  const data_set_t *ds = plugin_get_ds(r->type);
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

  value_t v[RECORD_MAX_VALUES];
  for (size_t i = 0; i < r->nvalues; i++) {
    if (r->kind == RECORD_DERIVE)
      v[i].derive = derive[i];
    else
      v[i].gauge = r->gauge[i];
  }
  value_list_t vl = VALUE_LIST_INIT;
  vl.values = v;
  vl.values_len = r->nvalues;
  vl.interval = MS_TO_CDTIME_T(g->interval_ms);
  set_names(&vl, r->plugin_instance, r->type, r->type_instance);
  if (plugin_dispatch_values(&vl) != 0)
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
static int stap_notification(const notification_t *n,
                             user_data_t __attribute__((unused)) * ud) {
  if (strcmp(n->plugin, "stap") != 0 ||
      (n->severity != NOTIF_WARNING && n->severity != NOTIF_FAILURE) ||
      strncmp(n->type_instance, "retransmits", strlen("retransmits")) != 0 ||
      strcmp(n->type_instance, FLOW_REPORT_TINST) == 0)
    return 0;

  size_t i;
  for (i = 0; i < stap_ngroups; i++)
    if (strcmp(stap_groups[i].cfg.name, n->plugin_instance) == 0)
      break;
  if (i == stap_ngroups)
    return 0;

  cdtime_t now = cdtime();
  pthread_mutex_lock(&flow_lock);
  bool due = flow_last != NULL &&
             (flow_last[i] == 0 || now - flow_last[i] >= FLOW_REPORT_MIN_GAP);
  if (due)
    flow_last[i] = now;
  pthread_mutex_unlock(&flow_lock);
  if (!due)
    return 0;

  char path[PATH_MAX + 128];
  ssnprintf(path, sizeof(path), "%s/collectd_stap_%s/top_flows",
            stap_config.procfs_dir, n->plugin_instance);
  struct flow flows[FLOWS_MAX];
  int nflows = flows_read(path, flows, FLOWS_MAX);
  if (nflows < 0) {
    WARNING("stap plugin: group %s: cannot read the top flows from %s: %s",
            n->plugin_instance, path, STRERROR(-nflows));
    return 0;
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
  if (stap_groups != NULL)
    return 0;

  struct utsname u;
  const char *release = uname(&u) == 0 ? u.release : "unknown";
  config_finish(&stap_config, CDTIME_T_TO_MS(plugin_get_interval()), release);
  if (stap_config.ngroups == 0) {
    WARNING("stap plugin: no probe group is enabled; add a <Group> block.");
    return 0;
  }

  stap_groups = calloc(stap_config.ngroups, sizeof(*stap_groups));
  pthread_mutex_lock(&flow_lock);
  flow_last = calloc(stap_config.ngroups, sizeof(*flow_last));
  pthread_mutex_unlock(&flow_lock);
  if (stap_groups == NULL || flow_last == NULL) {
    ERROR("stap plugin: out of memory.");
    return -1;
  }
  for (size_t i = 0; i < stap_config.ngroups; i++) {
    const struct group_config *gc = &stap_config.groups[i];
    struct group *g = &stap_groups[stap_ngroups];
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
    stap_ngroups++;

    char name[DATA_MAX_NAME_LEN];
    ssnprintf(name, sizeof(name), "stap/%s", gc->name);
    plugin_register_complex_read(NULL, name, stap_read,
                                 MS_TO_CDTIME_T(gc->interval_ms),
                                 &(user_data_t){.data = g});
    INFO("stap plugin: group %s: module %s, interval %.3f s", gc->name,
         gc->module, (double)gc->interval_ms / 1000.0);
  }
  return 0;
}

static int stap_shutdown(void) {
  /* Ask every group first so their stop timeouts run side by side. */
  for (size_t i = 0; i < stap_ngroups; i++)
    group_request_stop(&stap_groups[i]);
  for (size_t i = 0; i < stap_ngroups; i++) {
    group_join(&stap_groups[i]);
    group_destroy(&stap_groups[i]);
  }
  pthread_mutex_lock(&flow_lock);
  free(flow_last);
  flow_last = NULL;
  pthread_mutex_unlock(&flow_lock);
  free(stap_groups);
  stap_groups = NULL;
  stap_ngroups = 0;
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
