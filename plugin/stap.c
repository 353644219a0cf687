/* collectd glue: configuration, one supervised group per <Group>, dispatch of
 * values and notifications, and the plugin's own health values. */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "config.h"
#include "dispatch.h"
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
  };
  for (size_t i = 0; i < STATIC_ARRAY_SIZE(events); i++)
    dispatch_health(g, "stap_events", events[i].name,
                    (value_t){.derive = (derive_t)events[i].value});
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
  if (stap_groups == NULL) {
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
}
