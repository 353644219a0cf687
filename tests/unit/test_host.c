/* A stand-in for collectd's daemon: it defines the collectd API symbols the
 * plugin uses (nm -D --undefined-only build/stap.so), loads build/stap.so
 * with libltdl as collectd does, and drives it through its callbacks:
 * config, init, read, shutdown. Staprun is tests/fake-staprun replaying a
 * session. Linked with -rdynamic so that the plugin resolves these symbols
 * here. */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "helpers.h"

#include <ltdl.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FLOWS_MAX_TEST 16

#ifndef STAP_SO
#error "build with -DSTAP_SO=\"/path/to/build/stap.so\""
#endif

/* ---- What the plugin registered ---------------------------------------- */

static int (*config_cb)(oconfig_item_t *);
static plugin_init_cb init_cb;
static plugin_shutdown_cb shutdown_cb;
static char config_name[64], init_name[64], shutdown_name[64];

static plugin_read_cb read_cb;
static user_data_t read_ud;
static char read_name[64];
static char read_group[64];
static cdtime_t read_interval;
static int read_registrations;

static bool fail_thread_create;

static plugin_notification_cb notification_cb;
static char notification_name[64];

/* ---- What the plugin dispatched and logged ----------------------------- */

#define MAX_VALUES 256

struct value_rec {
  value_list_t vl; /* vl.values is not to be followed: see value */
  value_t value;
};

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct value_rec values[MAX_VALUES];
static size_t nvalues;
static notification_t notifications[16];
static size_t nnotifications;

static void reset_records(void) {
  pthread_mutex_lock(&rec_lock);
  nvalues = 0;
  nnotifications = 0;
  pthread_mutex_unlock(&rec_lock);
}

/* The n-th value of type/type_instance (from 0), or false. */
static bool find_value(const char *type, const char *type_instance, size_t n,
                       struct value_rec *out) {
  bool found = false;
  pthread_mutex_lock(&rec_lock);
  for (size_t i = 0; i < nvalues && !found; i++) {
    if (strcmp(values[i].vl.type, type) == 0 &&
        strcmp(values[i].vl.type_instance, type_instance) == 0 && n-- == 0) {
      *out = values[i];
      found = true;
    }
  }
  pthread_mutex_unlock(&rec_lock);
  return found;
}

static size_t count_type(const char *type) {
  size_t n = 0;
  pthread_mutex_lock(&rec_lock);
  for (size_t i = 0; i < nvalues; i++)
    if (strcmp(values[i].vl.type, type) == 0)
      n++;
  pthread_mutex_unlock(&rec_lock);
  return n;
}

static size_t count_notifications(void) {
  pthread_mutex_lock(&rec_lock);
  size_t n = nnotifications;
  pthread_mutex_unlock(&rec_lock);
  return n;
}

/* ---- The collectd API -------------------------------------------------- */

static char host_name[] = "testhost";
char *hostname_g = host_name;

static data_source_t ds_derive[] = {{"value", DS_TYPE_DERIVE, 0, NAN}};
static data_source_t ds_gauge[] = {{"value", DS_TYPE_GAUGE, NAN, NAN}};
static data_source_t ds_running[] = {{"value", DS_TYPE_GAUGE, 0, 1}};
static data_set_t data_sets[] = {
    {"protocol_counter", 1, ds_derive},
    {"gauge", 1, ds_gauge},
    {"stap_running", 1, ds_running},
    {"stap_events", 1, ds_derive},
};

const data_set_t *plugin_get_ds(const char *name) {
  for (size_t i = 0; i < STATIC_ARRAY_SIZE(data_sets); i++)
    if (strcmp(data_sets[i].type, name) == 0)
      return &data_sets[i];
  return NULL;
}

cdtime_t plugin_get_interval(void) { return MS_TO_CDTIME_T(10000); }

cdtime_t cdtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return TIMESPEC_TO_CDTIME_T(&ts);
}

char *sstrncpy(char *dest, const char *src, size_t n) {
  if (n == 0)
    return dest;
  strncpy(dest, src, n - 1);
  dest[n - 1] = '\0';
  return dest;
}

int ssnprintf(char *str, size_t size, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  int n = vsnprintf(str, size, format, ap);
  va_end(ap);
  return n;
}

void plugin_log(int level, const char *format, ...) {
  char msg[1100];
  va_list ap;
  va_start(ap, format);
  vsnprintf(msg, sizeof(msg), format, ap);
  va_end(ap);
  log_capture(level, msg);
}

int plugin_register_complex_config(const char *type,
                                   int (*callback)(oconfig_item_t *)) {
  sstrncpy(config_name, type, sizeof(config_name));
  config_cb = callback;
  return 0;
}

int plugin_register_init(const char *name, plugin_init_cb callback) {
  sstrncpy(init_name, name, sizeof(init_name));
  init_cb = callback;
  return 0;
}

int plugin_register_shutdown(const char *name, plugin_shutdown_cb callback) {
  sstrncpy(shutdown_name, name, sizeof(shutdown_name));
  shutdown_cb = callback;
  return 0;
}

int plugin_register_notification(const char *name,
                                 plugin_notification_cb callback,
                                 user_data_t const *user_data) {
  (void)user_data;
  sstrncpy(notification_name, name, sizeof(notification_name));
  notification_cb = callback;
  return 0;
}

/* As collectd's: a list of name/value pairs owned by the notification. The
 * test keeps the strings of the last list it saw in meta_seen. */
static char meta_seen[FLOWS_MAX_TEST][160];
static size_t nmeta_seen;

int plugin_notification_meta_add_string(notification_t *n, const char *name,
                                        const char *value) {
  notification_meta_t *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return -1;
  sstrncpy(m->name, name, sizeof(m->name));
  m->type = NM_TYPE_STRING;
  m->nm_value.nm_string = strdup(value);
  m->next = n->meta;
  n->meta = m;
  return 0;
}

int plugin_notification_meta_free(notification_meta_t *m) {
  while (m != NULL) {
    notification_meta_t *next = m->next;
    free((void *)m->nm_value.nm_string);
    free(m);
    m = next;
  }
  return 0;
}

int plugin_register_complex_read(const char *group, const char *name,
                                 plugin_read_cb callback, cdtime_t interval,
                                 user_data_t const *user_data) {
  /* As collectd does: the user data is copied, the pointer not kept. */
  sstrncpy(read_group, group ? group : "", sizeof(read_group));
  sstrncpy(read_name, name, sizeof(read_name));
  read_cb = callback;
  read_interval = interval;
  read_ud = user_data ? *user_data : (user_data_t){0};
  read_registrations++;
  return 0;
}

int plugin_thread_create(pthread_t *thread, void *(*start_routine)(void *),
                         void *arg, char const *name) {
  (void)name;
  if (fail_thread_create)
    return -1;
  return pthread_create(thread, NULL, start_routine, arg);
}

int plugin_dispatch_values(value_list_t const *vl) {
  pthread_mutex_lock(&rec_lock);
  if (nvalues < MAX_VALUES && vl->values_len == 1) {
    struct value_rec *r = &values[nvalues++];
    r->vl = *vl;
    r->value = vl->values[0];
    r->vl.values = &r->value;
  }
  pthread_mutex_unlock(&rec_lock);
  return 0;
}

int plugin_dispatch_notification(const notification_t *n) {
  pthread_mutex_lock(&rec_lock);
  nmeta_seen = 0;
  for (notification_meta_t *m = n->meta;
       m != NULL && nmeta_seen < FLOWS_MAX_TEST; m = m->next)
    sstrncpy(meta_seen[nmeta_seen++], m->nm_value.nm_string, 160);
  if (nnotifications < STATIC_ARRAY_SIZE(notifications))
    notifications[nnotifications++] = *n;
  pthread_mutex_unlock(&rec_lock);
  return 0;
}

/* ---- Fixture ----------------------------------------------------------- */

static lt_dlhandle plugin;

struct fixture {
  char *dir;
  char staprun[PATH_MAX]; /* a copy of the fake, where the plugin trusts it */
  oconfig_item_t *root;
  bool initialised;
};

/* The plugin is build/stap.so, or $UNIT_STAP_SO. */
static int load_plugin(void **state) {
  (void)state;
  const char *path = getenv("UNIT_STAP_SO");
  if (path == NULL || path[0] == '\0')
    path = STAP_SO;
  if (lt_dlinit() != 0) {
    print_error("lt_dlinit: %s\n", lt_dlerror());
    return -1;
  }
  plugin = lt_dlopen(path);
  if (plugin == NULL) {
    print_error("lt_dlopen %s: %s\n", path, lt_dlerror());
    return -1;
  }
  void (*module_register)(void) =
      (void (*)(void))(uintptr_t)lt_dlsym(plugin, "module_register");
  if (module_register == NULL) {
    print_error("no module_register in %s\n", path);
    return -1;
  }
  module_register();
  return 0;
}

static int unload_plugin(void **state) {
  (void)state;
  if (plugin != NULL)
    lt_dlclose(plugin);
  lt_dlexit();
  return 0;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || (f->dir = tmpdir_new()) == NULL)
    return -1;
  f->root = cfg_str(cfg_new("Plugin"), "stap");
  path_join(f->staprun, sizeof(f->staprun), f->dir, "staprun");
  copy_file(FAKE_STAPRUN, f->staprun);
  log_reset();
  reset_records();
  read_cb = NULL;
  read_registrations = 0;
  fail_thread_create = false;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  if (f->initialised)
    shutdown_cb(); /* stops what a failed test left running */
  cfg_free(f->root);
  tmpdir_remove(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void init_plugin(struct fixture *f) {
  f->initialised = true;
  assert_int_equal(init_cb(), 0);
}

static void shutdown_plugin(struct fixture *f) {
  f->initialised = false;
  assert_int_equal(shutdown_cb(), 0);
}

struct wait_value {
  const char *type, *type_instance;
  size_t n;
};

static bool have_value(void *arg) {
  struct wait_value *w = arg;
  struct value_rec r;
  return find_value(w->type, w->type_instance, w->n, &r);
}

static struct value_rec wait_value(const char *type, const char *tinst,
                                   size_t n) {
  struct wait_value w = {type, tinst, n};
  struct value_rec r;
  if (!wait_until(have_value, &w, WAIT_MS)) {
    log_dump();
    fail_msg("no value %zu of %s/%s was dispatched", n, type, tinst);
  }
  assert_true(find_value(type, tinst, n, &r));
  return r;
}

static pid_t staprun_pid(void) {
  struct log_entry e;
  if (!log_find(LOG_INFO, &e, "group tcp: started ", " (pid "))
    return -1;
  return (pid_t)atoi(strstr(e.msg, " (pid ") + 6);
}

/* ---- Tests ------------------------------------------------------------- */

static void test_registers_callbacks(void **state) {
  (void)state;
  assert_string_equal(config_name, "stap");
  assert_string_equal(init_name, "stap");
  assert_string_equal(shutdown_name, "stap");
  assert_non_null(config_cb);
  assert_non_null(init_cb);
  assert_non_null(shutdown_cb);
  /* Only module_register is exported (plugin/exports.map). */
  assert_null(lt_dlsym(plugin, "stap_log"));
  assert_null(lt_dlsym(plugin, "config_parse"));
  assert_null(lt_dlsym(plugin, "dispatch_value"));
}

static const char session[] =
    "hello 1 tcp\n"
    "info probes tcp:tcp_retransmit_skb=yes\n"
    "begin 1\n"
    "derive tcp protocol_counter retransmits 3\n"
    "derive tcp-5001 protocol_counter retransmits 2\n"
    "gauge tcp gauge queue 0.5\n"
    "notify warning tcp protocol_counter retransmits retransmits are climbing\n"
    "derive tcp no_such_type x 1\n"
    "gauge tcp protocol_counter wrong_kind 1\n"
    "end 1 6\n"
    "info batch 1 done\n" /* logged once batch 1 is fully counted */
    "@wait-term\n"
    "@on-term\n"
    "begin 2\n"
    "derive tcp protocol_counter retransmits 4\n"
    "end 2 1\n";

static void test_full_lifecycle(void **state) {
  struct fixture *f = *state;
  char replay[PATH_MAX], params[PATH_MAX];
  path_join(replay, sizeof(replay), f->dir, "tcp.replay");
  write_file(replay, session);
  /* The parameter list the build writes beside the module. */
  path_join(params, sizeof(params), f->dir, "tcp.replay.params");
  write_file(params, "# Public parameters\ninterval_ms\nport\n");

  cfg_str(cfg_add(f->root, "Staprun"), f->staprun);
  cfg_str(cfg_add(f->root, "ModuleDir"), f->dir);
  cfg_num(cfg_add(f->root, "RestartDelay"), 0.1);
  cfg_num(cfg_add(f->root, "StopTimeout"), 5);
  oconfig_item_t *g = cfg_str(cfg_add(f->root, "Group"), "tcp");
  cfg_str(cfg_add(g, "Module"), "tcp.replay"); /* relative to ModuleDir */
  cfg_num(cfg_add(g, "Interval"), 0.5);
  cfg_num(cfg_str(cfg_add(g, "Param"), "port"), 5001);
  assert_int_equal(config_cb(f->root), 0);
  init_plugin(f);

  /* One read callback for the group, at its interval. */
  assert_int_equal(read_registrations, 1);
  assert_string_equal(read_name, "stap/tcp");
  assert_int_equal(read_interval, MS_TO_CDTIME_T(500));
  assert_non_null(read_ud.data);
  assert_logged(LOG_INFO, "stap plugin: group tcp: module ", "tcp.replay",
                "interval 0.500 s");

  /* The batch: three values and a notification; its last two records are
   * refused. */
  if (!log_wait(LOG_INFO, "module says: batch 1 done"))
    assert_logged(LOG_INFO, "module says: batch 1 done");
  struct value_rec first, v;
  assert_true(find_value("protocol_counter", "retransmits", 0, &first));
  assert_true(find_value("protocol_counter", "retransmits", 1, &v));
  assert_string_equal(first.vl.plugin, "stap");
  assert_string_equal(first.vl.plugin_instance, "tcp");
  assert_int_equal(first.vl.values_len, 1);
  assert_int_equal(first.value.derive, 3);
  assert_int_equal(first.vl.interval, MS_TO_CDTIME_T(500));
  assert_string_equal(v.vl.plugin_instance, "tcp-5001");
  assert_int_equal(v.value.derive, 2);
  struct value_rec gauge;
  assert_true(find_value("gauge", "queue", 0, &gauge));
  assert_string_equal(gauge.vl.plugin, "stap");
  assert_true(gauge.value.gauge == 0.5);
  assert_int_equal(gauge.vl.interval, MS_TO_CDTIME_T(500));

  assert_int_equal(count_notifications(), 1);
  notification_t n = notifications[0];
  assert_int_equal(n.severity, NOTIF_WARNING);
  assert_string_equal(n.host, "testhost");
  assert_string_equal(n.plugin, "stap");
  assert_string_equal(n.plugin_instance, "tcp");
  assert_string_equal(n.type, "protocol_counter");
  assert_string_equal(n.type_instance, "retransmits");
  assert_string_equal(n.message, "retransmits are climbing");
  assert_true(n.time > 0);

  /* A type collectd does not know is refused, not dispatched, and logged;
   * so is a gauge of a DERIVE type. */
  assert_int_equal(count_type("no_such_type"), 0);
  assert_logged(LOG_WARNING,
                "stap plugin: group tcp: value tcp/no_such_type/x "
                "not dispatched",
                "TypesDB");
  assert_logged(LOG_WARNING,
                "value tcp/protocol_counter/wrong_kind not "
                "dispatched: the type's data sources are not all GAUGE");
  assert_int_equal(count_type("protocol_counter"), 2);

  /* The read callback dispatches the group's health. */
  assert_int_equal(read_cb(&read_ud), 0);
  struct value_rec running = wait_value("stap_running", "", 0);
  assert_string_equal(running.vl.plugin, "stap");
  assert_string_equal(running.vl.plugin_instance, "tcp");
  assert_true(running.value.gauge == 1.0);
  const struct {
    const char *name;
    derive_t value;
  } events[] = {{"restarts", 0},          {"batches", 1},
                {"bad_lines", 0},         {"gaps", 0},
                {"discarded_batches", 0}, {"dropped_series", 0},
                {"decreases", 0},         {"duplicate_series", 0}};
  for (size_t i = 0; i < STATIC_ARRAY_SIZE(events); i++) {
    struct value_rec e = wait_value("stap_events", events[i].name, 0);
    assert_string_equal(e.vl.plugin_instance, "tcp");
    if (e.value.derive != events[i].value)
      fail_msg("stap_events %s is %lld, expected %lld", events[i].name,
               (long long)e.value.derive, (long long)events[i].value);
  }

  /* Shutdown stops staprun; the module's end probes print a last batch,
   * which collectd 5.12 would no longer write: it is not dispatched. */
  pid_t pid = staprun_pid();
  assert_true(pid > 0);
  shutdown_plugin(f);
  assert_logged(LOG_INFO, "group tcp: staprun stopped (exited with status 0)");
  assert_false(find_value("protocol_counter", "retransmits", 2, &v));
  assert_int_equal(count_type("protocol_counter"), 2);
  assert_true(pid_wait_gone(pid, WAIT_MS));
  pid_t kids[4];
  assert_int_equal(child_processes(kids, 4), 0);

  char args_path[PATH_MAX];
  path_join(args_path, sizeof(args_path), f->dir, "tcp.replay.args");
  char *args = read_file(args_path);
  assert_non_null(args);
  assert_string_equal(args, "interval_ms=500 port=5001\n");
  free(args);
}

static void test_init_without_config(void **state) {
  struct fixture *f = *state;
  init_plugin(f);
  assert_logged(LOG_NOTICE, "stap plugin: no <Plugin stap> block");
  assert_int_equal(read_registrations, 0);
  shutdown_plugin(f);
}

static void test_only_bad_groups(void **state) {
  struct fixture *f = *state;
  cfg_str(cfg_add(f->root, "Group"), "bogus");
  cfg_num(cfg_add(cfg_str(cfg_add(f->root, "Group"), "tcp"), "Interval"), 0);
  assert_int_equal(config_cb(f->root), 0); /* collectd carries on */
  init_plugin(f);
  assert_logged(LOG_ERR, "stap plugin: group bogus: unknown probe group");
  assert_logged(LOG_ERR, "stap plugin: group tcp: option `Interval' is 0: it "
                         "must be between 0.1 and 86400 seconds");
  assert_logged(LOG_WARNING, "stap plugin: no probe group is enabled");
  assert_int_equal(read_registrations, 0);
  shutdown_plugin(f);
}

static void test_thread_creation_fails(void **state) {
  struct fixture *f = *state;
  char replay[PATH_MAX];
  path_join(replay, sizeof(replay), f->dir, "tcp.replay");
  write_file(replay, "hello 1 tcp\n@wait-term\n");
  cfg_str(cfg_add(f->root, "Staprun"), f->staprun);
  cfg_str(cfg_add(cfg_str(cfg_add(f->root, "Group"), "tcp"), "Module"), replay);
  assert_int_equal(config_cb(f->root), 0);
  fail_thread_create = true;
  init_plugin(f);
  assert_logged(LOG_ERR, "group tcp: cannot start its thread; not started");
  assert_int_equal(read_registrations, 0);
  shutdown_plugin(f);
  assert_int_equal(child_processes(NULL, 0), 0);
}

/* A WARNING on stap/tcp retransmits makes the plugin read the tcp module's
 * top_flows control file and send a follow-up notification naming them, at
 * most once per 30 s per group. */
static void test_flow_report(void **state) {
  struct fixture *f = *state;
  char replay[PATH_MAX], dir[PATH_MAX], flows[PATH_MAX];
  path_join(replay, sizeof(replay), f->dir, "tcp.replay");
  write_file(replay, "hello 1 tcp\n@wait-term\n");
  path_join(dir, sizeof(dir), f->dir, "collectd_stap_tcp");
  assert_int_equal(mkdir(dir, 0755), 0);
  path_join(flows, sizeof(flows), dir, "top_flows");
  write_file(flows, "# top flows by retransmitted segments, last 30 s\n"
                    "flow 127.0.0.1:5001 127.0.0.1:40312 17\n"
                    "flow [::1]:443 [::1]:51000 3\n"
                    "flow bogus line\n");
  cfg_str(cfg_add(f->root, "Staprun"), f->staprun);
  cfg_str(cfg_add(f->root, "ProcfsDir"), f->dir);
  cfg_str(cfg_add(cfg_str(cfg_add(f->root, "Group"), "tcp"), "Module"), replay);
  assert_int_equal(config_cb(f->root), 0);
  init_plugin(f);
  assert_string_equal(notification_name, "stap");
  assert_non_null(notification_cb);

  notification_t n = {.severity = NOTIF_OKAY};
  sstrncpy(n.host, "testhost", sizeof(n.host)); /* hostname_g */
  sstrncpy(n.plugin, "stap", sizeof(n.plugin));
  sstrncpy(n.plugin_instance, "tcp", sizeof(n.plugin_instance));
  sstrncpy(n.type, "protocol_counter", sizeof(n.type));
  sstrncpy(n.type_instance, "retransmits", sizeof(n.type_instance));
  assert_int_equal(notification_cb(&n, NULL), 0); /* OKAY: nothing */
  assert_int_equal(count_notifications(), 0);

  n.severity = NOTIF_WARNING;
  assert_int_equal(notification_cb(&n, NULL), 0);
  assert_int_equal(count_notifications(), 1);
  notification_t r = notifications[0];
  assert_int_equal(r.severity, NOTIF_WARNING);
  assert_string_equal(r.host, "testhost");
  assert_string_equal(r.plugin, "stap");
  assert_string_equal(r.plugin_instance, "tcp");
  assert_string_equal(r.type_instance, "retransmits-flows");
  assert_non_null(strstr(r.message, "127.0.0.1:5001 <-> 127.0.0.1:40312 17"));
  assert_non_null(strstr(r.message, "[::1]:443 <-> [::1]:51000 3"));
  assert_int_equal(nmeta_seen, 2);

  /* Its own follow-up and a second alert within 30 s: nothing more. */
  assert_int_equal(notification_cb(&r, NULL), 0);
  assert_int_equal(notification_cb(&n, NULL), 0);
  assert_int_equal(count_notifications(), 1);
  shutdown_plugin(f);
}

static void flow_setup(struct fixture *f, notification_t *n) {
  char replay[PATH_MAX], dir[PATH_MAX], flows[PATH_MAX];
  path_join(replay, sizeof(replay), f->dir, "tcp.replay");
  write_file(replay, "hello 1 tcp\n@wait-term\n");
  path_join(dir, sizeof(dir), f->dir, "collectd_stap_tcp");
  assert_int_equal(mkdir(dir, 0755), 0);
  path_join(flows, sizeof(flows), dir, "top_flows");
  write_file(flows, "flow 127.0.0.1:5001 127.0.0.1:40312 17\n");
  cfg_str(cfg_add(f->root, "Staprun"), f->staprun);
  cfg_str(cfg_add(f->root, "ProcfsDir"), f->dir);
  cfg_str(cfg_add(cfg_str(cfg_add(f->root, "Group"), "tcp"), "Module"), replay);
  assert_int_equal(config_cb(f->root), 0);
  *n = (notification_t){.severity = NOTIF_WARNING};
  sstrncpy(n->host, "testhost", sizeof(n->host));
  sstrncpy(n->plugin, "stap", sizeof(n->plugin));
  sstrncpy(n->plugin_instance, "tcp", sizeof(n->plugin_instance));
  sstrncpy(n->type, "protocol_counter", sizeof(n->type));
  sstrncpy(n->type_instance, "retransmits", sizeof(n->type_instance));
}

/* An alert about another host (received over the network) is not answered
 * with this host's flows. */
static void test_flow_report_only_for_this_host(void **state) {
  struct fixture *f = *state;
  notification_t n;
  flow_setup(f, &n);
  init_plugin(f);
  sstrncpy(n.host, "web1", sizeof(n.host));
  assert_int_equal(notification_cb(&n, NULL), 0);
  assert_int_equal(count_notifications(), 0);
  sstrncpy(n.host, "testhost", sizeof(n.host));
  assert_int_equal(notification_cb(&n, NULL), 0);
  assert_int_equal(count_notifications(), 1);
  shutdown_plugin(f);
}

/* After shutdown began no report runs: the group table is gone, and
 * collectd may still deliver notifications. */
static void test_no_flow_report_after_shutdown(void **state) {
  struct fixture *f = *state;
  notification_t n;
  flow_setup(f, &n);
  init_plugin(f);
  shutdown_plugin(f);
  assert_int_equal(notification_cb(&n, NULL), 0);
  assert_int_equal(count_notifications(), 0);
  assert_not_logged(LOG_ANY, "top flows");
}

struct alerter {
  notification_t n;
  atomic_bool stop;
  unsigned calls;
};

static void *alert_loop(void *arg) {
  struct alerter *a = arg;
  while (!atomic_load(&a->stop)) {
    notification_cb(&a->n, NULL);
    a->calls++;
  }
  return NULL;
}

/* Alerts arriving on another thread while the plugin shuts down: the group
 * table is read under its lock (AddressSanitizer would see a use after
 * free otherwise), at most one report is made, and none after shutdown. */
static void test_flow_reports_race_shutdown(void **state) {
  struct fixture *f = *state;
  struct alerter *a = calloc(1, sizeof(*a));
  assert_non_null(a);
  flow_setup(f, &a->n);
  init_plugin(f);
  atomic_init(&a->stop, false);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, alert_loop, a), 0);
  sleep_ms(50);
  shutdown_plugin(f);
  size_t after_shutdown = count_notifications();
  sleep_ms(50);
  atomic_store(&a->stop, true);
  pthread_join(t, NULL);
  assert_true(a->calls > 0);
  assert_true(after_shutdown <= 1);
  assert_int_equal(count_notifications(), after_shutdown);
  free(a);
}

/* A group whose module fails the trust check is not started; the others
 * are. */
static void test_refused_group_others_start(void **state) {
  struct fixture *f = *state;
  char open_dir[PATH_MAX], tcp[PATH_MAX], udp[PATH_MAX];
  path_join(open_dir, sizeof(open_dir), f->dir, "open");
  assert_int_equal(mkdir(open_dir, 0755), 0);
  path_join(tcp, sizeof(tcp), open_dir, "collectd_stap_tcp.ko");
  write_file(tcp, "hello 1 tcp\n@wait-term\n");
  assert_int_equal(chmod(open_dir, 0757), 0);
  path_join(udp, sizeof(udp), f->dir, "collectd_stap_udp.ko");
  write_file(udp, "hello 1 udp\n"
                  "begin 1\nderive udp protocol_counter x 7\nend 1 1\n"
                  "@wait-term\n");
  cfg_str(cfg_add(f->root, "Staprun"), f->staprun);
  cfg_str(cfg_add(cfg_str(cfg_add(f->root, "Group"), "tcp"), "Module"), tcp);
  cfg_str(cfg_add(cfg_str(cfg_add(f->root, "Group"), "udp"), "Module"), udp);
  assert_int_equal(config_cb(f->root), 0);
  init_plugin(f);
  struct value_rec v = wait_value("protocol_counter", "x", 0);
  assert_string_equal(v.vl.plugin_instance, "udp");
  char want[2 * PATH_MAX + 64];
  snprintf(want, sizeof(want),
           "directory %s is writable by others (mode "
           "0757); fix with chmod o-w %s",
           open_dir, open_dir);
  if (!log_wait(LOG_ERR, "stap plugin: group tcp: module ", want))
    assert_logged(LOG_ERR, "stap plugin: group tcp: module ", want);
  assert_not_logged(LOG_INFO, "group tcp: started ");
  shutdown_plugin(f);
  assert_int_equal(chmod(open_dir, 0755), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_registers_callbacks),
      T(test_full_lifecycle),
      T(test_init_without_config),
      T(test_only_bad_groups),
      T(test_thread_creation_fails),
      T(test_flow_report),
      T(test_flow_report_only_for_this_host),
      T(test_no_flow_report_after_shutdown),
      T(test_flow_reports_race_shutdown),
      T(test_refused_group_others_start),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("host", tests, load_plugin, unload_plugin);
}
