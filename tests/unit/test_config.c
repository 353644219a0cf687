/* config_parse and config_finish: the <Plugin stap> block, built by hand as
 * collectd's parser would hand it over. Errors go through stap_log, which
 * helpers.c captures, so each test checks that the message names the
 * offending option and group. */
#include "helpers.h"

#include "plugin/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define RELEASE "6.1.0-test-amd64"
#define DEFAULT_MODULE_DIR "/lib/modules/" RELEASE "/systemtap"
#define DEFAULT_INTERVAL_MS 10000

struct fixture {
  struct plugin_config cfg;
  oconfig_item_t *root; /* <Plugin "stap"> */
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return -1;
  config_defaults(&f->cfg);
  f->root = cfg_str(cfg_new("Plugin"), "stap");
  log_reset();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  config_free(&f->cfg);
  cfg_free(f->root);
  free(f);
  return 0;
}

static oconfig_item_t *add_group(oconfig_item_t *root, const char *name) {
  return cfg_str(cfg_add(root, "Group"), name);
}

static int parse_and_finish(struct fixture *f) {
  int errors = config_parse(&f->cfg, f->root);
  return errors + config_finish(&f->cfg, DEFAULT_INTERVAL_MS, RELEASE);
}

static size_t errors_logged(void) { return log_count(LOG_ERR, ""); }

static void test_defaults(void **state) {
  struct fixture *f = *state;
  assert_string_equal(f->cfg.staprun, "/usr/bin/staprun");
  assert_string_equal(f->cfg.module_dir, "");
  assert_string_equal(f->cfg.proc_modules, "/proc/modules");
  assert_int_equal(f->cfg.restart_delay_ms, 1000);
  assert_int_equal(f->cfg.restart_delay_max_ms, 60000);
  assert_int_equal(f->cfg.stop_timeout_ms, 10000);
  assert_int_equal(f->cfg.ngroups, 0);

  assert_int_equal(parse_and_finish(f), 0);
  assert_string_equal(f->cfg.module_dir, DEFAULT_MODULE_DIR);
  assert_int_equal(f->cfg.ngroups, 0);
  assert_int_equal(log_size(), 0);
}

static void test_group_defaults(void **state) {
  struct fixture *f = *state;
  add_group(f->root, "tcp");
  assert_int_equal(parse_and_finish(f), 0);
  assert_int_equal(f->cfg.ngroups, 1);
  const struct group_config *g = &f->cfg.groups[0];
  assert_string_equal(g->name, "tcp");
  assert_string_equal(g->module, DEFAULT_MODULE_DIR "/collectd_stap_tcp.ko");
  assert_int_equal(g->interval_ms, DEFAULT_INTERVAL_MS);
  assert_int_equal(g->max_batch_records, 4096);
  assert_int_equal(g->max_series, CONFIG_DEFAULT_MAX_SERIES);
  assert_int_equal(g->buffer_mib, CONFIG_DEFAULT_BUFFER_MIB);
  assert_int_equal(g->nparams, 0);
  assert_int_equal(log_size(), 0);
}

static void test_every_option(void **state) {
  struct fixture *f = *state;
  oconfig_item_t *r = f->root;
  cfg_str(cfg_add(r, "Staprun"), "/opt/stap/bin/staprun");
  cfg_str(cfg_add(r, "ModuleDir"), "/srv/modules");
  cfg_str(cfg_add(r, "ProcModules"), "/tmp/test/proc-modules");
  cfg_num(cfg_add(r, "RestartDelay"), 0.5);
  cfg_num(cfg_add(r, "RestartDelayMax"), 30);
  cfg_num(cfg_add(r, "StopTimeout"), 2.5);
  oconfig_item_t *g = add_group(r, "tcp");
  cfg_str(cfg_add(g, "Module"), "mine.ko");
  cfg_num(cfg_add(g, "Interval"), 1.5);
  cfg_num(cfg_add(g, "MaxBatchRecords"), 100);
  cfg_num(cfg_add(g, "MaxSeries"), 200);
  cfg_num(cfg_add(g, "BufferSize"), 4);
  cfg_num(cfg_str(cfg_add(g, "Param"), "ephemeral_low"), 32768);
  cfg_str(cfg_str(cfg_add(g, "Param"), "ports"), "80,443");
  cfg_num(cfg_str(cfg_add(g, "Param"), "offset"), -5);

  assert_int_equal(parse_and_finish(f), 0);
  assert_int_equal(log_size(), 0);
  assert_string_equal(f->cfg.staprun, "/opt/stap/bin/staprun");
  assert_string_equal(f->cfg.module_dir, "/srv/modules");
  assert_string_equal(f->cfg.proc_modules, "/tmp/test/proc-modules");
  assert_int_equal(f->cfg.restart_delay_ms, 500);
  assert_int_equal(f->cfg.restart_delay_max_ms, 30000);
  assert_int_equal(f->cfg.stop_timeout_ms, 2500);
  assert_int_equal(f->cfg.ngroups, 1);
  const struct group_config *gc = &f->cfg.groups[0];
  assert_string_equal(gc->module, "/srv/modules/mine.ko");
  assert_int_equal(gc->interval_ms, 1500);
  assert_int_equal(gc->max_batch_records, 100);
  assert_int_equal(gc->max_series, 200);
  assert_int_equal(gc->buffer_mib, 4);
  assert_int_equal(gc->nparams, 3);
  assert_string_equal(gc->params[0].name, "ephemeral_low");
  assert_string_equal(gc->params[0].value, "32768");
  assert_string_equal(gc->params[1].name, "ports");
  assert_string_equal(gc->params[1].value, "80,443");
  assert_string_equal(gc->params[2].value, "-5");
}

static void test_keys_are_case_insensitive(void **state) {
  struct fixture *f = *state;
  cfg_num(cfg_add(f->root, "stoptimeout"), 3);
  oconfig_item_t *g = cfg_str(cfg_add(f->root, "GROUP"), "tcp");
  cfg_num(cfg_add(g, "INTERVAL"), 2);
  assert_int_equal(parse_and_finish(f), 0);
  assert_int_equal(f->cfg.stop_timeout_ms, 3000);
  assert_int_equal(f->cfg.ngroups, 1);
  assert_int_equal(f->cfg.groups[0].interval_ms, 2000);
}

static void test_module_absolute_path_kept(void **state) {
  struct fixture *f = *state;
  cfg_str(cfg_add(f->root, "ModuleDir"), "/srv/modules");
  cfg_str(cfg_add(add_group(f->root, "tcp"), "Module"), "/abs/dir/m.ko");
  assert_int_equal(parse_and_finish(f), 0);
  assert_string_equal(f->cfg.groups[0].module, "/abs/dir/m.ko");
}

static void test_module_relative_to_default_dir(void **state) {
  struct fixture *f = *state;
  cfg_str(cfg_add(add_group(f->root, "tcp"), "Module"), "sub/m.ko");
  assert_int_equal(parse_and_finish(f), 0);
  assert_string_equal(f->cfg.groups[0].module, DEFAULT_MODULE_DIR "/sub/m.ko");
}

/* ModuleDir comes from the kernel release only once every block is read: a
 * later block's ModuleDir still applies to an earlier block's group. */
static void test_module_dir_from_a_later_block(void **state) {
  struct fixture *f = *state;
  add_group(f->root, "tcp");
  assert_int_equal(config_parse(&f->cfg, f->root), 0);
  oconfig_item_t *second = cfg_str(cfg_new("Plugin"), "stap");
  cfg_str(cfg_add(second, "ModuleDir"), "/late");
  assert_int_equal(config_parse(&f->cfg, second), 0);
  cfg_free(second);
  assert_int_equal(config_finish(&f->cfg, 1000, RELEASE), 0);
  assert_string_equal(f->cfg.groups[0].module, "/late/collectd_stap_tcp.ko");
  assert_int_equal(f->cfg.groups[0].interval_ms, 1000);
}

static void test_restart_delay_max_raised_to_delay(void **state) {
  struct fixture *f = *state;
  cfg_num(cfg_add(f->root, "RestartDelay"), 5);
  cfg_num(cfg_add(f->root, "RestartDelayMax"), 1);
  assert_int_equal(parse_and_finish(f), 0);
  assert_int_equal(f->cfg.restart_delay_ms, 5000);
  assert_int_equal(f->cfg.restart_delay_max_ms, 5000);
}

static void test_interval_bounds_accepted(void **state) {
  struct fixture *f = *state;
  cfg_num(cfg_add(add_group(f->root, "tcp"), "Interval"), 0.1);
  assert_int_equal(parse_and_finish(f), 0);
  assert_int_equal(f->cfg.groups[0].interval_ms, 100);

  config_free(&f->cfg);
  config_defaults(&f->cfg);
  cfg_free(f->root);
  f->root = cfg_str(cfg_new("Plugin"), "stap");
  cfg_num(cfg_add(add_group(f->root, "tcp"), "Interval"), 86400);
  assert_int_equal(parse_and_finish(f), 0);
  assert_int_equal(f->cfg.groups[0].interval_ms, 86400000);
}

static void test_unknown_group(void **state) {
  struct fixture *f = *state;
  add_group(f->root, "bogus");
  assert_int_equal(config_parse(&f->cfg, f->root), 1);
  assert_int_equal(f->cfg.ngroups, 0);
  assert_logged(LOG_ERR, "stap plugin: group bogus: unknown probe group",
                "known groups: tcp, netdev, udp, netfilter, ipmib, socket, "
                "connect, accept, drops");
}

static void test_group_needs_one_name(void **state) {
  struct fixture *f = *state;
  cfg_add(f->root, "Group");
  cfg_num(cfg_add(f->root, "Group"), 1);
  cfg_str(cfg_str(cfg_add(f->root, "Group"), "tcp"), "udp");
  assert_int_equal(config_parse(&f->cfg, f->root), 3);
  assert_int_equal(f->cfg.ngroups, 0);
  assert_int_equal(log_count(LOG_ERR, "<Group> takes one argument"), 3);
}

static void test_unknown_top_level_option(void **state) {
  struct fixture *f = *state;
  cfg_num(cfg_add(f->root, "Bogus"), 1);
  add_group(f->root, "tcp");
  assert_int_equal(parse_and_finish(f), 1);
  assert_logged(LOG_ERR, "unknown option `Bogus' in <Plugin stap>");
  assert_int_equal(f->cfg.ngroups, 1); /* the rest still applies */
}

static void test_duplicate_group(void **state) {
  struct fixture *f = *state;
  cfg_num(cfg_add(add_group(f->root, "tcp"), "Interval"), 1);
  cfg_num(cfg_add(add_group(f->root, "tcp"), "Interval"), 2);
  assert_int_equal(parse_and_finish(f), 1);
  assert_logged(LOG_ERR, "stap plugin: group tcp: <Group \"tcp\"> appears "
                         "twice");
  assert_int_equal(f->cfg.ngroups, 1);
  assert_int_equal(f->cfg.groups[0].interval_ms, 1000); /* the first */
}

static void test_duplicate_group_across_blocks(void **state) {
  struct fixture *f = *state;
  add_group(f->root, "tcp");
  assert_int_equal(config_parse(&f->cfg, f->root), 0);
  assert_int_equal(config_parse(&f->cfg, f->root), 1);
  assert_logged(LOG_ERR, "stap plugin: group tcp: <Group \"tcp\"> appears "
                         "twice");
  assert_int_equal(f->cfg.ngroups, 1);
}

static void test_duplicate_param(void **state) {
  struct fixture *f = *state;
  oconfig_item_t *g = add_group(f->root, "tcp");
  cfg_num(cfg_str(cfg_add(g, "Param"), "port"), 1);
  cfg_num(cfg_str(cfg_add(g, "Param"), "port"), 2);
  assert_int_equal(parse_and_finish(f), 1);
  assert_logged(LOG_ERR, "group tcp: option `Param'", "\"port\"",
                "given twice");
  assert_logged(LOG_ERR, "group tcp: <Group \"tcp\"> has 1 error(s) and is "
                         "not started");
  assert_int_equal(f->cfg.ngroups, 0);
}

static void test_param_limit(void **state) {
  struct fixture *f = *state;
  oconfig_item_t *g = add_group(f->root, "tcp");
  char name[16];
  for (int i = 0; i < CONFIG_MAX_PARAMS; i++) {
    snprintf(name, sizeof(name), "p%d", i);
    cfg_num(cfg_str(cfg_add(g, "Param"), name), i);
  }
  assert_int_equal(parse_and_finish(f), 0);
  assert_int_equal(f->cfg.groups[0].nparams, CONFIG_MAX_PARAMS);

  config_free(&f->cfg);
  config_defaults(&f->cfg);
  cfg_num(cfg_str(cfg_add(g, "Param"), "one_too_many"), 1);
  assert_int_equal(parse_and_finish(f), 1);
  assert_logged(LOG_ERR, "group tcp: option `Param'", "at most 32");
  assert_int_equal(f->cfg.ngroups, 0);
}

static void test_param_values_accepted(void **state) {
  struct fixture *f = *state;
  oconfig_item_t *g = add_group(f->root, "tcp");
  cfg_num(cfg_str(cfg_add(g, "Param"), "zero"), 0);
  cfg_num(cfg_str(cfg_add(g, "Param"), "big"), 9e15);
  cfg_str(cfg_str(cfg_add(g, "Param"), "text"), "aZ09_.:,/+-");
  cfg_num(cfg_str(cfg_add(g, "Param"), "_under_1"), 7);
  assert_int_equal(parse_and_finish(f), 0);
  const struct group_config *gc = &f->cfg.groups[0];
  assert_int_equal(gc->nparams, 4);
  assert_string_equal(gc->params[0].value, "0");
  assert_string_equal(gc->params[1].value, "9000000000000000");
  assert_string_equal(gc->params[2].value, "aZ09_.:,/+-");
  assert_string_equal(gc->params[3].name, "_under_1");
}

static void test_bad_group_left_out_others_kept(void **state) {
  struct fixture *f = *state;
  add_group(f->root, "bogus");
  cfg_str(cfg_add(add_group(f->root, "tcp"), "Interval"), "often");
  cfg_num(cfg_add(f->root, "RestartDelay"), 0);
  oconfig_item_t *good = add_group(f->root, "tcp");
  cfg_num(cfg_add(good, "Interval"), 5);
  cfg_num(cfg_add(f->root, "StopTimeout"), 4);

  assert_int_equal(parse_and_finish(f), 3);
  assert_logged(LOG_ERR, "group bogus: unknown probe group");
  assert_logged(LOG_ERR, "group tcp: option `Interval' takes one number");
  assert_logged(LOG_ERR, "option `RestartDelay'");
  /* The broken first tcp group is no duplicate of the good second one. */
  assert_not_logged(LOG_ERR, "appears twice");
  assert_int_equal(f->cfg.ngroups, 1);
  assert_int_equal(f->cfg.groups[0].interval_ms, 5000);
  assert_int_equal(f->cfg.restart_delay_ms, 1000);
  assert_int_equal(f->cfg.stop_timeout_ms, 4000);
}

static void test_module_path_too_long(void **state) {
  struct fixture *f = *state;
  char dir[4001];
  dir[0] = '/';
  memset(dir + 1, 'd', sizeof(dir) - 2);
  dir[sizeof(dir) - 1] = '\0';
  char module[201];
  memset(module, 'm', sizeof(module) - 1);
  module[sizeof(module) - 1] = '\0';
  cfg_str(cfg_add(f->root, "ModuleDir"), dir);
  cfg_str(cfg_add(add_group(f->root, "tcp"), "Module"), module);
  assert_int_equal(config_parse(&f->cfg, f->root), 0);
  assert_int_equal(config_finish(&f->cfg, 1000, RELEASE), 1);
  assert_logged(LOG_ERR, "group tcp: the module path is longer");
  assert_int_equal(f->cfg.ngroups, 0);
}

/* ---- Table: one bad option in <Group "tcp"> ---------------------------- */

struct value {
  int type;
  const char *s;
  double d;
};
#define S(x)                                                                   \
  { OCONFIG_TYPE_STRING, x, 0 }
#define N(x)                                                                   \
  { OCONFIG_TYPE_NUMBER, NULL, x }
#define B(x)                                                                   \
  { OCONFIG_TYPE_BOOLEAN, NULL, x }

struct bad_option {
  const char *name;
  const char *key;
  int nvalues;
  struct value values[3];
  const char *needles[3]; /* besides the key and the group */
};

/* A name longer than the 63 characters a parameter name may have. */
#define LONG_NAME                                                              \
  "p123456789012345678901234567890123456789012345678901234567890123"

/* clang-format off */
static const struct bad_option bad_group_options[] = {
  {"Interval 0", "Interval", 1, {N(0)}, {"is 0", "between 0.1 and 86400"}},
  {"Interval negative", "Interval", 1, {N(-1)},
   {"is -1: it must be between 0.1 and 86400 seconds"}},
  {"Interval below 0.1 s", "Interval", 1, {N(0.05)}, {"between 0.1"}},
  {"Interval above a day", "Interval", 1, {N(86401)}, {"and 86400 seconds"}},
  {"Interval as a string", "Interval", 1, {S("10")}, {"takes one number"}},
  {"Interval as a boolean", "Interval", 1, {B(true)}, {"takes one number"}},
  {"Interval with two numbers", "Interval", 2, {N(1), N(2)},
   {"takes one number"}},
  {"Interval without value", "Interval", 0, {{0}}, {"takes one number"}},
  {"MaxBatchRecords 0", "MaxBatchRecords", 1, {N(0)}, {"whole number"}},
  {"MaxBatchRecords fraction", "MaxBatchRecords", 1, {N(1.5)},
   {"whole number from 1 to 1e+06"}},
  {"MaxBatchRecords too large", "MaxBatchRecords", 1, {N(1000001)},
   {"whole number"}},
  {"MaxBatchRecords as a string", "MaxBatchRecords", 1, {S("100")},
   {"takes one whole number"}},
  {"MaxSeries negative", "MaxSeries", 1, {N(-1)}, {"whole number"}},
  {"BufferSize 0", "BufferSize", 1, {N(0)}, {"whole number from 1 to 64"}},
  {"BufferSize too large", "BufferSize", 1, {N(65)},
   {"is 65: it must be a whole number from 1 to 64"}},
  {"BufferSize fraction", "BufferSize", 1, {N(0.5)}, {"whole number"}},
  {"Module as a number", "Module", 1, {N(5)}, {"one string argument"}},
  {"Module empty", "Module", 1, {S("")}, {"between 1 and"}},
  {"Module with two strings", "Module", 2, {S("a"), S("b")},
   {"one string argument"}},
  {"Param named interval_ms", "Param", 2, {S("interval_ms"), N(1000)},
   {"interval_ms", "use Interval instead"}},
  {"Param name in capitals", "Param", 2, {S("Port"), N(1)},
   {"\"Port\" is not a module parameter name"}},
  {"Param name starting with a digit", "Param", 2, {S("1port"), N(1)},
   {"\"1port\" is not a module parameter name"}},
  {"Param name with '-'", "Param", 2, {S("a-b"), N(1)},
   {"not a module parameter name"}},
  {"Param name with '='", "Param", 2, {S("a=b"), N(1)},
   {"not a module parameter name"}},
  {"Param name empty", "Param", 2, {S(""), N(1)},
   {"not a module parameter name"}},
  {"Param name of 64 characters", "Param", 2, {S(LONG_NAME), N(1)},
   {"not a module parameter name"}},
  {"Param value with a space", "Param", 2, {S("port"), S("a b")},
   {"\"port\"", "value \"a b\" may only hold"}},
  {"Param value with ';'", "Param", 2, {S("port"), S("1;reboot")},
   {"\"port\"", "may only hold"}},
  {"Param value with '='", "Param", 2, {S("port"), S("a=b")},
   {"may only hold"}},
  {"Param value empty", "Param", 2, {S("port"), S("")}, {"may only hold"}},
  {"Param value fraction", "Param", 2, {S("port"), N(1.5)},
   {"\"port\"", "integers or strings, not 1.5"}},
  {"Param value too large", "Param", 2, {S("port"), N(1e16)},
   {"integers or strings"}},
  {"Param value boolean", "Param", 2, {S("port"), B(true)},
   {"\"port\"", "number or a string"}},
  {"Param without value", "Param", 1, {S("port")}, {"a name and a value"}},
  {"Param with three values", "Param", 3, {S("port"), N(1), N(2)},
   {"a name and a value"}},
  {"Param name not a string", "Param", 2, {N(1), N(2)},
   {"a name and a value"}},
};
/* clang-format on */

static void add_values(oconfig_item_t *item, int n, const struct value *v) {
  for (int i = 0; i < n; i++) {
    if (v[i].type == OCONFIG_TYPE_STRING)
      cfg_str(item, v[i].s);
    else if (v[i].type == OCONFIG_TYPE_NUMBER)
      cfg_num(item, v[i].d);
    else
      cfg_bool(item, v[i].d != 0);
  }
}

static void assert_needles(const char *const first[], size_t nfirst,
                           const char *const more[], size_t nmore) {
  const char *all[8] = {NULL};
  size_t n = 0;
  for (size_t i = 0; i < nfirst && first[i] != NULL; i++)
    all[n++] = first[i];
  for (size_t i = 0; i < nmore && more[i] != NULL; i++)
    all[n++] = more[i];
  all[n] = NULL;
  assert_logged_v(LOG_ERR, all, __FILE__, __LINE__);
}

static void run_bad_group_option(void **state) {
  const struct bad_option *c = *state;
  struct plugin_config cfg;
  config_defaults(&cfg);
  log_reset();
  oconfig_item_t *root = cfg_str(cfg_new("Plugin"), "stap");
  oconfig_item_t *g = add_group(root, "tcp");
  cfg_num(cfg_add(g, "Interval"), 2); /* a good option beside the bad one */
  add_values(cfg_add(g, c->key), c->nvalues, c->values);

  int errors = config_parse(&cfg, root);
  errors += config_finish(&cfg, DEFAULT_INTERVAL_MS, RELEASE);
  size_t ngroups = cfg.ngroups;
  config_free(&cfg);
  cfg_free(root);

  assert_int_equal(errors, 1);
  assert_int_equal(ngroups, 0);
  char where[128];
  /* Every message about a group's option starts with the group's name. */
  snprintf(where, sizeof(where), "stap plugin: group tcp: option `%s'", c->key);
  const char *first[] = {where};
  assert_needles(first, ARRAY_SIZE(first), c->needles, ARRAY_SIZE(c->needles));
  /* One line for the option, one that the group is not started. */
  assert_int_equal(errors_logged(), 2);
  assert_logged(LOG_ERR, "group tcp: <Group \"tcp\"> has 1 error(s) and is "
                         "not started");
}

static void test_unknown_group_option(void **state) {
  struct fixture *f = *state;
  oconfig_item_t *g = add_group(f->root, "tcp");
  cfg_num(cfg_add(g, "Foo"), 1);
  cfg_num(cfg_add(g, "Interval"), 0);
  assert_int_equal(parse_and_finish(f), 1);
  assert_logged(LOG_ERR, "group tcp: unknown option `Foo'",
                "Valid options: Module, Interval");
  assert_logged(LOG_ERR, "group tcp: option `Interval' is 0: it must be");
  assert_logged(LOG_ERR, "group tcp: <Group \"tcp\"> has 2 error(s)");
  assert_int_equal(f->cfg.ngroups, 0);
}

/* ---- Table: one bad top-level option ----------------------------------- */

/* clang-format off */
static const struct bad_option bad_top_options[] = {
  {"RestartDelay 0", "RestartDelay", 1, {N(0)}, {"between 0.1 and 3600"}},
  {"RestartDelay as a string", "RestartDelay", 1, {S("1")},
   {"takes one number"}},
  {"RestartDelayMax below 0.1 s", "RestartDelayMax", 1, {N(0.01)},
   {"between 0.1"}},
  {"StopTimeout negative", "StopTimeout", 1, {N(-1)}, {"is -1"}},
  {"StopTimeout above 600 s", "StopTimeout", 1, {N(601)}, {"and 600 seconds"}},
  {"Staprun as a number", "Staprun", 1, {N(1)}, {"one string argument"}},
  {"Staprun empty", "Staprun", 1, {S("")}, {"between 1 and 4095"}},
  {"ModuleDir as a boolean", "ModuleDir", 1, {B(true)},
   {"one string argument"}},
  {"ModuleDir without value", "ModuleDir", 0, {{0}}, {"one string argument"}},
  {"ProcModules as a number", "ProcModules", 1, {N(1)},
   {"one string argument"}},
};
/* clang-format on */

static void run_bad_top_option(void **state) {
  const struct bad_option *c = *state;
  struct plugin_config cfg, defaults;
  config_defaults(&cfg);
  config_defaults(&defaults);
  log_reset();
  oconfig_item_t *root = cfg_str(cfg_new("Plugin"), "stap");
  add_values(cfg_add(root, c->key), c->nvalues, c->values);
  add_group(root, "tcp");

  int errors = config_parse(&cfg, root);
  cfg_free(root);
  /* The option is ignored: everything is as before. */
  bool unchanged = strcmp(cfg.staprun, defaults.staprun) == 0 &&
                   strcmp(cfg.module_dir, defaults.module_dir) == 0 &&
                   cfg.restart_delay_ms == defaults.restart_delay_ms &&
                   cfg.restart_delay_max_ms == defaults.restart_delay_max_ms &&
                   cfg.stop_timeout_ms == defaults.stop_timeout_ms &&
                   strcmp(cfg.proc_modules, defaults.proc_modules) == 0;
  size_t ngroups = cfg.ngroups;
  config_free(&cfg);

  assert_int_equal(errors, 1);
  assert_true(unchanged);
  assert_int_equal(ngroups, 1); /* the group is not affected */
  char where[128];
  snprintf(where, sizeof(where), "option `%s'", c->key);
  const char *first[] = {"stap plugin: ", where};
  assert_needles(first, ARRAY_SIZE(first), c->needles, ARRAY_SIZE(c->needles));
  assert_not_logged(LOG_ERR, "group ");
  assert_int_equal(errors_logged(), 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static const struct CMUnitTest fixed_tests[] = {
    T(test_defaults),
    T(test_group_defaults),
    T(test_every_option),
    T(test_keys_are_case_insensitive),
    T(test_module_absolute_path_kept),
    T(test_module_relative_to_default_dir),
    T(test_module_dir_from_a_later_block),
    T(test_restart_delay_max_raised_to_delay),
    T(test_interval_bounds_accepted),
    T(test_unknown_group),
    T(test_group_needs_one_name),
    T(test_unknown_top_level_option),
    T(test_unknown_group_option),
    T(test_duplicate_group),
    T(test_duplicate_group_across_blocks),
    T(test_duplicate_param),
    T(test_param_limit),
    T(test_param_values_accepted),
    T(test_bad_group_left_out_others_kept),
    T(test_module_path_too_long),
};

static struct CMUnitTest tests[ARRAY_SIZE(fixed_tests) +
                               ARRAY_SIZE(bad_group_options) +
                               ARRAY_SIZE(bad_top_options)];

int main(void) {
  size_t n = 0;
  for (size_t i = 0; i < ARRAY_SIZE(fixed_tests); i++)
    tests[n++] = fixed_tests[i];
  for (size_t i = 0; i < ARRAY_SIZE(bad_group_options); i++)
    tests[n++] =
        (struct CMUnitTest){.name = bad_group_options[i].name,
                            .test_func = run_bad_group_option,
                            .initial_state = (void *)&bad_group_options[i]};
  for (size_t i = 0; i < ARRAY_SIZE(bad_top_options); i++)
    tests[n++] =
        (struct CMUnitTest){.name = bad_top_options[i].name,
                            .test_func = run_bad_top_option,
                            .initial_state = (void *)&bad_top_options[i]};
  unit_filter_from_env();
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
