/* Parses the <Plugin stap> block. Errors name the option and say how to fix
 * it; a broken <Group> is left out instead of stopping collectd. */
#include "config.h"
#include "log.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const config_known_groups[] = {
    "tcp",    "netdev",  "udp",    "netfilter", "ipmib",
    "socket", "connect", "accept", "drops",     NULL};

#define ERR(...) stap_log(LOG_ERR, "stap plugin: " __VA_ARGS__)

void config_defaults(struct plugin_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  snprintf(cfg->staprun, sizeof(cfg->staprun), "%s", CONFIG_DEFAULT_STAPRUN);
  snprintf(cfg->procfs_dir, sizeof(cfg->procfs_dir), "%s",
           CONFIG_DEFAULT_PROCFS_DIR);
  cfg->restart_delay_ms = CONFIG_DEFAULT_RESTART_DELAY_MS;
  cfg->restart_delay_max_ms = CONFIG_DEFAULT_RESTART_DELAY_MAX_MS;
  cfg->stop_timeout_ms = CONFIG_DEFAULT_STOP_TIMEOUT_MS;
}

void config_free(struct plugin_config *cfg) {
  free(cfg->groups);
  cfg->groups = NULL;
  cfg->ngroups = 0;
}

static const char *where(const oconfig_item_t *ci) {
  static __thread char buf[160];
  const oconfig_item_t *p = ci->parent;
  if (p != NULL && strcasecmp(p->key, "Group") == 0 && p->values_num == 1 &&
      p->values[0].type == OCONFIG_TYPE_STRING)
    snprintf(buf, sizeof(buf), "<Group \"%s\"> option `%s'",
             p->values[0].value.string, ci->key);
  else
    snprintf(buf, sizeof(buf), "option `%s'", ci->key);
  return buf;
}

static int get_string(const oconfig_item_t *ci, char *dst, size_t size) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERR("%s takes exactly one string argument (in double quotes).", where(ci));
    return -1;
  }
  const char *s = ci->values[0].value.string;
  if (s[0] == '\0' || strlen(s) >= size) {
    ERR("%s must be between 1 and %zu characters.", where(ci), size - 1);
    return -1;
  }
  snprintf(dst, size, "%s", s);
  return 0;
}

/* A duration in seconds, as collectd's own Interval options. */
static int get_ms(const oconfig_item_t *ci, double min_s, double max_s,
                  uint64_t *ms) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) {
    ERR("%s takes one number (seconds).", where(ci));
    return -1;
  }
  double v = ci->values[0].value.number;
  if (!isfinite(v) || v < min_s || v > max_s) {
    ERR("%s is %g; it must be between %g and %g seconds.", where(ci), v, min_s,
        max_s);
    return -1;
  }
  *ms = (uint64_t)llround(v * 1000.0);
  return 0;
}

static int get_count(const oconfig_item_t *ci, double min, double max,
                     size_t *out) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) {
    ERR("%s takes one whole number.", where(ci));
    return -1;
  }
  double v = ci->values[0].value.number;
  if (!isfinite(v) || v != floor(v) || v < min || v > max) {
    ERR("%s is %g; it must be a whole number from %g to %g.", where(ci), v, min,
        max);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

static bool known_group(const char *name) {
  for (size_t i = 0; config_known_groups[i] != NULL; i++)
    if (strcmp(config_known_groups[i], name) == 0)
      return true;
  return false;
}

static void known_groups_list(char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; config_known_groups[i] != NULL && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                             config_known_groups[i]);
}

/* Module parameters become `name=value' words on staprun's command line and
 * SystemTap globals, so both sides are held to what stap accepts. */
static bool param_name_ok(const char *s) {
  if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return false;
  return true;
}

static bool param_value_ok(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || strchr("_.:,/+-", *s) != NULL))
      return false;
  return true;
}

static int parse_param(const oconfig_item_t *ci, struct group_config *g) {
  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERR("%s takes a name and a value, e.g. Param \"ephemeral_low\" 32768.",
        where(ci));
    return -1;
  }
  const char *name = ci->values[0].value.string;
  char value[CONFIG_PARAM_VALUE_SIZE];
  if (ci->values[1].type == OCONFIG_TYPE_NUMBER) {
    double v = ci->values[1].value.number;
    if (v != floor(v) || fabs(v) > 9.0e15) {
      ERR("%s \"%s\": SystemTap parameters are integers or strings, not %g.",
          where(ci), name, v);
      return -1;
    }
    snprintf(value, sizeof(value), "%.0f", v);
  } else if (ci->values[1].type == OCONFIG_TYPE_STRING) {
    snprintf(value, sizeof(value), "%s", ci->values[1].value.string);
  } else {
    ERR("%s \"%s\": the value must be a number or a string.", where(ci), name);
    return -1;
  }
  if (strlen(name) >= CONFIG_PARAM_NAME_SIZE || !param_name_ok(name)) {
    ERR("%s: \"%s\" is not a module parameter name (lower case letters, "
        "digits and _).",
        where(ci), name);
    return -1;
  }
  if (strcmp(name, "interval_ms") == 0) {
    ERR("%s: interval_ms is set from the group's Interval option; use "
        "Interval instead.",
        where(ci));
    return -1;
  }
  if (!param_value_ok(value)) {
    ERR("%s \"%s\": value \"%s\" may only hold letters, digits and _.:,/+-.",
        where(ci), name, value);
    return -1;
  }
  for (size_t i = 0; i < g->nparams; i++) {
    if (strcmp(g->params[i].name, name) == 0) {
      ERR("%s \"%s\" is given twice.", where(ci), name);
      return -1;
    }
  }
  if (g->nparams >= CONFIG_MAX_PARAMS) {
    ERR("%s: at most %d parameters per group.", where(ci), CONFIG_MAX_PARAMS);
    return -1;
  }
  snprintf(g->params[g->nparams].name, CONFIG_PARAM_NAME_SIZE, "%s", name);
  snprintf(g->params[g->nparams].value, CONFIG_PARAM_VALUE_SIZE, "%s", value);
  g->nparams++;
  return 0;
}

static int parse_group(struct plugin_config *cfg, const oconfig_item_t *ci) {
  struct group_config g;
  memset(&g, 0, sizeof(g));
  char known[256];
  known_groups_list(known, sizeof(known));

  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERR("<Group> takes one argument, the group name, e.g. <Group \"tcp\">. "
        "Known groups: %s.",
        known);
    return -1;
  }
  const char *name = ci->values[0].value.string;
  if (!known_group(name)) {
    ERR("<Group \"%s\">: unknown probe group; known groups: %s. The group is "
        "not started.",
        name, known);
    return -1;
  }
  for (size_t i = 0; i < cfg->ngroups; i++) {
    if (strcmp(cfg->groups[i].name, name) == 0) {
      ERR("<Group \"%s\"> appears twice; the second one is ignored.", name);
      return -1;
    }
  }
  snprintf(g.name, sizeof(g.name), "%s", name);

  int errors = 0;
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *c = &ci->children[i];
    int rc;
    if (strcasecmp(c->key, "Module") == 0)
      rc = get_string(c, g.module, sizeof(g.module));
    else if (strcasecmp(c->key, "Interval") == 0)
      rc = get_ms(c, 0.1, 86400.0, &g.interval_ms);
    else if (strcasecmp(c->key, "MaxBatchRecords") == 0)
      rc = get_count(c, 1, 1000000, &g.max_batch_records);
    else if (strcasecmp(c->key, "MaxSeries") == 0)
      rc = get_count(c, 1, 1000000, &g.max_series);
    else if (strcasecmp(c->key, "Param") == 0)
      rc = parse_param(c, &g);
    else {
      ERR("<Group \"%s\">: unknown option `%s'. Valid options: Module, "
          "Interval, MaxBatchRecords, MaxSeries, Param.",
          name, c->key);
      rc = -1;
    }
    if (rc != 0)
      errors++;
  }
  if (errors > 0) {
    ERR("<Group \"%s\"> has %d error(s) and is not started; fix them and "
        "restart collectd.",
        name, errors);
    return -1;
  }

  struct group_config *p =
      realloc(cfg->groups, (cfg->ngroups + 1) * sizeof(*p));
  if (p == NULL) {
    ERR("<Group \"%s\">: out of memory.", name);
    return -1;
  }
  cfg->groups = p;
  cfg->groups[cfg->ngroups++] = g;
  return 0;
}

int config_parse(struct plugin_config *cfg, const oconfig_item_t *ci) {
  int errors = 0;
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *c = &ci->children[i];
    int rc;
    if (strcasecmp(c->key, "Group") == 0)
      rc = parse_group(cfg, c);
    else if (strcasecmp(c->key, "Staprun") == 0)
      rc = get_string(c, cfg->staprun, sizeof(cfg->staprun));
    else if (strcasecmp(c->key, "ProcfsDir") == 0)
      rc = get_string(c, cfg->procfs_dir, sizeof(cfg->procfs_dir));
    else if (strcasecmp(c->key, "ModuleDir") == 0)
      rc = get_string(c, cfg->module_dir, sizeof(cfg->module_dir));
    else if (strcasecmp(c->key, "RestartDelay") == 0)
      rc = get_ms(c, 0.1, 3600.0, &cfg->restart_delay_ms);
    else if (strcasecmp(c->key, "RestartDelayMax") == 0)
      rc = get_ms(c, 0.1, 86400.0, &cfg->restart_delay_max_ms);
    else if (strcasecmp(c->key, "StopTimeout") == 0)
      rc = get_ms(c, 0.1, 600.0, &cfg->stop_timeout_ms);
    else {
      ERR("unknown option `%s' in <Plugin stap>; it is ignored. Valid "
          "options: Staprun, ModuleDir, ProcfsDir, RestartDelay, "
          "RestartDelayMax, StopTimeout, <Group>.",
          c->key);
      rc = -1;
    }
    if (rc != 0)
      errors++;
  }
  return errors;
}

int config_finish(struct plugin_config *cfg, uint64_t default_interval_ms,
                  const char *kernel_release) {
  int errors = 0;
  if (cfg->module_dir[0] == '\0')
    snprintf(cfg->module_dir, sizeof(cfg->module_dir),
             "/lib/modules/%.200s/systemtap", kernel_release);
  if (cfg->restart_delay_max_ms < cfg->restart_delay_ms)
    cfg->restart_delay_max_ms = cfg->restart_delay_ms;

  size_t kept = 0;
  for (size_t i = 0; i < cfg->ngroups; i++) {
    struct group_config *g = &cfg->groups[i];
    char path[2 * PATH_MAX + 64];
    if (g->module[0] == '\0')
      snprintf(path, sizeof(path), "%s/collectd_stap_%s.ko", cfg->module_dir,
               g->name);
    else if (g->module[0] != '/')
      snprintf(path, sizeof(path), "%s/%s", cfg->module_dir, g->module);
    else
      snprintf(path, sizeof(path), "%s", g->module);
    if (strlen(path) >= sizeof(g->module)) {
      ERR("<Group \"%s\">: the module path is longer than %d characters; "
          "the group is not started.",
          g->name, PATH_MAX - 1);
      errors++;
      continue;
    }
    memcpy(g->module, path, strlen(path) + 1);
    if (g->interval_ms == 0)
      g->interval_ms = default_interval_ms;
    if (g->max_batch_records == 0)
      g->max_batch_records = 4096;
    if (g->max_series == 0)
      g->max_series = CONFIG_DEFAULT_MAX_SERIES;
    cfg->groups[kept++] = *g;
  }
  cfg->ngroups = kept;
  return errors;
}
