/* The group supervisor against tests/fake-staprun, which replays a module
 * session written by each test (its header lists the directives). What the
 * group dispatches goes to the recorder in helpers.c, what it logs to the
 * captured log. Every test ends by checking that no process is left. */
#include "helpers.h"

#include "plugin/group.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#define RELEASE "6.1.0-test-amd64"

struct fixture {
  char *dir;
  char module[PATH_MAX];
  char proc_modules[PATH_MAX]; /* the fake /proc/modules (ProcModules) */
  struct plugin_config pcfg;
  struct group_config gcfg;
  uint64_t hello_min_ms; /* group.hello_min_ms for the test */
  struct group g;
  bool inited, started;
  bool hung; /* the thread did not end: it still uses g */
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || (f->dir = tmpdir_new()) == NULL)
    return -1;
  snprintf(f->module, sizeof(f->module), "%s/collectd_stap_tcp.ko", f->dir);
  config_defaults(&f->pcfg);
  /* A copy of the fake in the test's directory: the plugin runs only what
   * root alone can change (the checkout may be under /tmp), and the copy's
   * module list is the test's fake /proc/modules (ProcModules). */
  path_join(f->pcfg.staprun, sizeof(f->pcfg.staprun), f->dir, "staprun");
  copy_file(FAKE_STAPRUN, f->pcfg.staprun);
  f->pcfg.restart_delay_ms = 100;
  f->pcfg.restart_delay_max_ms = 400;
  f->pcfg.stop_timeout_ms = WAIT_MS / 2;
  snprintf(f->gcfg.name, sizeof(f->gcfg.name), "tcp");
  snprintf(f->gcfg.module, sizeof(f->gcfg.module), "%s", f->module);
  f->gcfg.interval_ms = 1000;
  f->gcfg.max_batch_records = 4096;
  f->gcfg.max_series = 4096;
  f->gcfg.buffer_mib = 1;
  path_join(f->proc_modules, sizeof(f->proc_modules), f->dir, "proc-modules");
  snprintf(f->pcfg.proc_modules, sizeof(f->pcfg.proc_modules), "%s",
           f->proc_modules);
  f->hello_min_ms = GROUP_HELLO_MIN_MS;
  log_reset();
  recorder_reset();
  *state = f;
  return 0;
}

/* The pids of staprun (the fake) the group logged as started. */
static size_t started_pids(pid_t *out, size_t max) {
  size_t n = 0;
  struct log_entry e;
  for (size_t i = 0; log_get(i, &e); i++) {
    const char *p = strstr(e.msg, " (pid ");
    if (strstr(e.msg, ": started ") != NULL && p != NULL && n < max)
      out[n++] = (pid_t)atoi(p + 6);
  }
  return n;
}

static bool thread_done(void *arg) {
  return atomic_load(&((struct group *)arg)->done);
}

/* group_join, bounded by WAIT_MS. If it gives up on the thread, the fakes
 * are killed and the recorder unblocked so that the thread ends before the
 * fixture is freed. Returns whether group_join returned by itself. */
static bool join_bounded(struct fixture *f) {
  f->started = false;
  if (group_join(&f->g, WAIT_MS))
    return true;
  recorder_block(false);
  pid_t pids[64];
  size_t n = started_pids(pids, ARRAY_SIZE(pids));
  for (size_t i = 0; i < n; i++)
    kill(pids[i], SIGKILL);
  if (!wait_until(thread_done, &f->g, WAIT_MS))
    f->hung = true;
  return false;
}

/* Also the way out of a failed test: the thread and the fake are stopped. */
static int teardown(void **state) {
  struct fixture *f = *state;
  if (f->started) {
    group_request_stop(&f->g);
    join_bounded(f);
  }
  if (f->hung)
    return -1; /* the thread still uses the fixture: leave it */
  if (f->inited)
    group_destroy(&f->g);
  tmpdir_remove(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* Writes the replay file MODULE, or MODULE.N for the N-th start. */
static void replay(struct fixture *f, int run, const char *text) {
  char path[PATH_MAX + 16];
  if (run == 0)
    snprintf(path, sizeof(path), "%s", f->module);
  else
    snprintf(path, sizeof(path), "%s.%d", f->module, run);
  write_file(path, text);
}

static void start(struct fixture *f) {
  assert_int_equal(group_init(&f->g, &f->pcfg, &f->gcfg, RELEASE), 0);
  f->g.hello_min_ms = f->hello_min_ms;
  f->inited = true;
  assert_int_equal(group_start(&f->g, test_thread_create), 0);
  f->started = true;
}

static struct group_stats stats(struct fixture *f) {
  struct group_stats s;
  group_stats_get(&f->g, &s);
  return s;
}

/* Stops the group and checks that nothing is left running: neither any
 * staprun it started nor any child of this process (a keeper). Returns how
 * long the stop took (ms). */
static uint64_t stop(struct fixture *f) {
  uint64_t t0 = now_ms();
  group_request_stop(&f->g);
  if (!join_bounded(f)) {
    log_dump();
    fail_msg("group_join gave up on the thread after %d ms", WAIT_MS);
  }
  uint64_t took = now_ms() - t0;

  pid_t pids[64];
  size_t n = started_pids(pids, ARRAY_SIZE(pids));
  for (size_t i = 0; i < n; i++)
    if (!pid_wait_gone(pids[i], WAIT_MS))
      fail_msg("staprun (pid %d) still runs after group_join", (int)pids[i]);
  pid_t kids[8];
  size_t nkids = child_processes(kids, ARRAY_SIZE(kids));
  if (nkids != 0)
    fail_msg("%zu child process(es) left after group_join, e.g. pid %d", nkids,
             (int)kids[0]);
  assert_false(stats(f).running);
  return took;
}

#define WAIT_LOG(level, ...)                                                   \
  do {                                                                         \
    if (!log_wait(level, __VA_ARGS__))                                         \
      assert_logged(level, __VA_ARGS__);                                       \
  } while (0)

#define WAIT_VALUES(n)                                                         \
  do {                                                                         \
    if (!recorder_wait(n, WAIT_MS)) {                                          \
      log_dump();                                                              \
      fail_msg("%zu values dispatched, expected %d", recorder_size(),          \
               (int)(n));                                                      \
    }                                                                          \
  } while (0)

static struct dispatched nth(size_t i) {
  struct dispatched d;
  assert_true(recorder_get(i, &d));
  return d;
}

/* The parameter list `make modules' writes beside the module. */
static void params_list(struct fixture *f, const char *text) {
  char path[PATH_MAX];
  path_join(path, sizeof(path), f->dir, "collectd_stap_tcp.params");
  write_file(path, text);
}

static void test_normal_session(void **state) {
  struct fixture *f = *state;
  params_list(f, "# Public parameters of tcp\ninterval_ms\nport\n");
  f->gcfg.nparams = 1;
  snprintf(f->gcfg.params[0].name, CONFIG_PARAM_NAME_SIZE, "port");
  snprintf(f->gcfg.params[0].value, CONFIG_PARAM_VALUE_SIZE, "5001");
  replay(f, 0,
         "hello 1 tcp\n"
         "info probes tcp:tcp_retransmit_skb=yes\n"
         "begin 1\n"
         "derive tcp protocol_counter retransmits 3\n"
         "gauge tcp-5001 gauge - 1.5\n"
         "notify warning tcp protocol_counter retransmits climbing fast\n"
         "end 1 3\n"
         "begin 2\n"
         "derive tcp protocol_counter retransmits 5\n"
         "end 2 1\n"
         "info batch 2 done\n" /* logged once batch 2 is fully counted */
         "@stderr WARNING: staprun has something to say\n"
         "@wait-term\n");
  start(f);
  WAIT_LOG(LOG_INFO, "group tcp: module says: batch 2 done");
  WAIT_LOG(LOG_WARNING, "group tcp: staprun: WARNING: staprun has something");
  assert_int_equal(recorder_size(), 4);

  struct dispatched d = nth(0);
  assert_int_equal(d.kind, RECORD_DERIVE);
  assert_string_equal(d.group, "tcp");
  assert_int_equal(d.interval_ms, 1000);
  assert_string_equal(d.plugin_instance, "tcp");
  assert_string_equal(d.type, "protocol_counter");
  assert_string_equal(d.type_instance, "retransmits");
  assert_int_equal(d.derive, 3);
  d = nth(1);
  assert_int_equal(d.kind, RECORD_GAUGE);
  assert_string_equal(d.plugin_instance, "tcp-5001");
  assert_string_equal(d.type, "gauge");
  assert_string_equal(d.type_instance, "");
  assert_true(d.gauge == 1.5);
  d = nth(2);
  assert_int_equal(d.kind, RECORD_NOTIFY);
  assert_int_equal(d.severity, RECORD_WARNING);
  assert_string_equal(d.type_instance, "retransmits");
  assert_string_equal(d.text, "climbing fast");
  d = nth(3);
  assert_int_equal(d.derive, 5);

  struct group_stats s = stats(f);
  assert_true(s.running);
  assert_int_equal(s.starts, 1);
  assert_int_equal(s.restarts, 0);
  assert_int_equal(s.batches, 2);
  assert_int_equal(s.bad_lines + s.discarded + s.gaps + s.series_dropped, 0);
  assert_logged(LOG_INFO, "group tcp: module says: probes tcp:tcp_retransmit");
  assert_logged(LOG_INFO, "group tcp: module ", " is up (protocol version 1)");
  char started[PATH_MAX + 32];
  snprintf(started, sizeof(started), "group tcp: started %s (pid ",
           f->pcfg.staprun);
  assert_logged(LOG_INFO, started);

  /* staprun MODULE interval_ms=... and the group's Params. */
  char path[PATH_MAX + 16];
  snprintf(path, sizeof(path), "%s.args", f->module);
  char *args = read_file(path);
  assert_non_null(args);
  assert_string_equal(args, "interval_ms=1000 port=5001\n");
  free(args);
  /* and staprun's -b: the relay buffer a CPU, 1 MiB unless BufferSize says. */
  snprintf(path, sizeof(path), "%s.options", f->module);
  char *options = read_file(path);
  assert_non_null(options);
  assert_string_equal(options, "-b 1\n");
  free(options);

  stop(f);
  assert_logged(LOG_INFO, "group tcp: staprun stopped (exited with status 0)");
  assert_not_logged(LOG_ANY, "restarting");
  assert_not_logged(LOG_ERR, "");
  assert_int_equal(recorder_size(), 4);
}

/* The first run dies after one batch; the second starts its counter from 0
 * again, and the dispatched values carry on from the first run's. */
static void crash_and_restart(struct fixture *f, const char *how_it_dies,
                              const char *log_says) {
  char first[512];
  snprintf(first, sizeof(first),
           "hello 1 tcp\n"
           "begin 1\n"
           "derive tcp protocol_counter retransmits 5\n"
           "derive tcp protocol_counter other 100\n"
           "end 1 2\n"
           "%s\n",
           how_it_dies);
  replay(f, 1, first);
  /* Retransmits in the new run's first batch may exceed the old run's
   * last value: the restart, not a drop, says the counter began anew. */
  replay(f, 2,
         "hello 1 tcp\n"
         "begin 1\n"
         "derive tcp protocol_counter retransmits 6\n"
         "end 1 1\n"
         "begin 2\n"
         "derive tcp protocol_counter retransmits 8\n"
         "derive tcp protocol_counter other 1\n"
         "end 2 2\n"
         "info run 2 batch 2 done\n"
         "@wait-term\n");
  replay(f, 0, "@exit 3\n"); /* a third run is not expected */
  start(f);
  WAIT_LOG(LOG_INFO, "module says: run 2 batch 2 done");
  assert_int_equal(recorder_size(), 5);

  int64_t v[8];
  assert_int_equal(recorder_derives("retransmits", v, 8), 3);
  assert_int_equal(v[0], 5);
  assert_int_equal(v[1], 11);
  assert_int_equal(v[2], 13);
  assert_int_equal(recorder_derives("other", v, 8), 2);
  assert_int_equal(v[0], 100);
  assert_int_equal(v[1], 101);

  assert_logged(LOG_ERR, "group tcp: staprun on ", log_says, RELEASE);
  assert_logged(LOG_NOTICE, "group tcp: restarting staprun in 0.1 s");
  struct group_stats s = stats(f);
  assert_int_equal(s.starts, 2);
  assert_int_equal(s.restarts, 1);
  assert_int_equal(s.batches, 3);
  assert_true(s.running);
  stop(f);
  assert_not_logged(LOG_ERR, "exited with status 3");
}

static void test_counters_monotonic_after_exit(void **state) {
  crash_and_restart(*state, "@exit 1", "exited with status 1");
}

static void test_counters_monotonic_after_signal(void **state) {
  crash_and_restart(*state, "@kill-self 9", "was killed by signal 9");
}

static bool five_restarts_logged(void *arg) {
  (void)arg;
  return log_count(LOG_NOTICE, "restarting staprun in") >= 5;
}

static void test_restart_backoff(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "@stderr ERROR: simulated failure\n@exit 1\n");
  start(f);
  wait_until(five_restarts_logged, NULL, WAIT_MS);
  stop(f);

  /* Delays 0.1, 0.2, 0.4 (RestartDelayMax), 0.4, ... */

  const char *want[] = {"0.1 s", "0.2 s", "0.4 s", "0.4 s", "0.4 s"};
  const unsigned want_ms[] = {100, 200, 400, 400, 400};
  struct log_entry e, prev = {0};
  size_t k = 0;
  for (size_t i = 0; log_get(i, &e) && k < ARRAY_SIZE(want); i++) {
    if (strstr(e.msg, "restarting staprun in") == NULL)
      continue;
    if (strstr(e.msg, want[k]) == NULL)
      fail_msg("restart %zu: \"%s\", expected a delay of %s", k + 1, e.msg,
               want[k]);
    /* A restart waits its delay before the next run (which then fails). */
    if (k > 0 && e.at_ms - prev.at_ms < want_ms[k - 1])
      fail_msg("restart %zu came %llu ms after the previous, before its "
               "delay of %u ms",
               k + 1, (unsigned long long)(e.at_ms - prev.at_ms),
               want_ms[k - 1]);
    prev = e;
    k++;
  }
  if (k < ARRAY_SIZE(want)) {
    log_dump();
    fail_msg("%zu restarts logged, expected at least %zu", k, ARRAY_SIZE(want));
  }
  struct group_stats s = stats(f);
  assert_true(s.restarts >= 4);
  assert_true(s.starts == s.restarts || s.starts == s.restarts + 1);
  assert_not_logged(LOG_NOTICE, "restarting staprun in 0.8 s");
  assert_logged(LOG_ERR, "exited with status 1", "it said: ERROR: simulated");
}

static void test_hint_for_function_not_implemented(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "@stderr ERROR: Couldn't insert module '/tmp/x.ko': Function not "
         "implemented\n"
         "@exit 1\n");
  start(f);
  WAIT_LOG(LOG_ERR, "CONFIG_MODULES");
  stop(f);
  char on[PATH_MAX + 32];
  snprintf(on, sizeof(on), "staprun on %s exited with status 1", f->module);
  assert_logged(LOG_ERR, "group tcp: ", on,
                "; it said: ERROR: Couldn't insert module '/tmp/x.ko': "
                "Function not implemented; this kernel cannot load modules",
                "(kernel " RELEASE ")");
  /* The line itself is logged as staprun printed it. */
  assert_logged(LOG_ERR, "group tcp: staprun: ERROR: Couldn't insert module");
}

/* SIGTERM makes the module's end probes print a last batch; collectd 5.12
 * would queue it and never write it (its write threads are stopped by
 * then), so it is read, logged at debug level, and not dispatched. */
static void test_batch_after_stop_not_dispatched(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\n"
         "derive tcp protocol_counter retransmits 1\n"
         "end 1 1\n"
         "@wait-term\n"
         "@on-term\n"
         "begin 2\n"
         "derive tcp protocol_counter retransmits 9\n"
         "end 2 1\n");
  start(f);
  WAIT_VALUES(1);
  stop(f);
  int64_t v[4];
  assert_int_equal(recorder_derives("retransmits", v, 4), 1);
  assert_int_equal(v[0], 1);
  assert_int_equal(stats(f).batches, 1);
  assert_logged(LOG_DEBUG, "group tcp: batch 2 came after shutdown began; "
                           "not dispatched");
  assert_logged(LOG_INFO, "group tcp: staprun stopped (exited with status 0)");
  assert_not_logged(LOG_ANY, "discarded");
  assert_not_logged(LOG_WARNING, "StopTimeout");
}

static void test_stop_kills_after_stop_timeout(void **state) {
  struct fixture *f = *state;
  f->pcfg.stop_timeout_ms = 300;
  replay(f, 0,
         "hello 1 tcp\n"
         "@ignore-term\n"
         "begin 1\n"
         "derive tcp protocol_counter retransmits 1\n"
         "end 1 1\n"
         "@wait-term\n");
  start(f);
  WAIT_VALUES(1); /* so SIGTERM is ignored by now */
  uint64_t took = stop(f);
  assert_true(took >= 300);
  assert_logged(LOG_WARNING, "group tcp: staprun (pid ",
                "did not stop within StopTimeout (300 ms); killing it");
  assert_logged(LOG_INFO, "group tcp: staprun stopped (was killed by signal 9");
}

static void refused(struct fixture *f, const char *hello,
                    const char *const needles[]) {
  char text[256];
  snprintf(text, sizeof(text),
           "%s\n"
           "begin 1\n"
           "derive tcp protocol_counter retransmits 1\n"
           "end 1 1\n"
           "@wait-term\n",
           hello);
  replay(f, 0, text);
  start(f);
  if (!log_wait_v(LOG_ERR, needles, WAIT_MS))
    assert_logged_v(LOG_ERR, needles, __FILE__, __LINE__);
  /* The module is stopped and retried only after RestartDelayMax. */
  WAIT_LOG(LOG_NOTICE, "group tcp: restarting staprun in");
  struct log_entry e;
  assert_true(log_find(LOG_NOTICE, &e, "restarting staprun in"));
  if (strstr(e.msg, "in 0.4 s") == NULL)
    fail_msg("\"%s\": expected RestartDelayMax, 0.4 s", e.msg);
  assert_false(stats(f).running);
  stop(f);
  assert_int_equal(recorder_size(), 0);
}

static void test_protocol_version_mismatch(void **state) {
  struct fixture *f = *state;
  char module[PATH_MAX + 16];
  snprintf(module, sizeof(module), "module %s speaks", f->module);
  refused(f, "hello 2 tcp",
          NEEDLES("group tcp: ", module,
                  "record protocol version 2, this plugin speaks version 1",
                  "Rebuild the module"));
}

static void test_module_of_another_group(void **state) {
  struct fixture *f = *state;
  refused(f, "hello 1 udp",
          NEEDLES("group tcp: ", "says it is group \"udp\"",
                  "collectd_stap_tcp.ko"));
}

static void test_missing_module(void **state) {
  struct fixture *f = *state;
  snprintf(f->gcfg.module, sizeof(f->gcfg.module), "%s/missing.ko", f->dir);
  start(f);
  char what[PATH_MAX + 32];
  snprintf(what, sizeof(what), "module %s/missing.ko: No such file", f->dir);
  WAIT_LOG(LOG_ERR, "group tcp: ", what, "make modules KVER=" RELEASE);
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

static void test_module_is_a_directory(void **state) {
  struct fixture *f = *state;
  snprintf(f->gcfg.module, sizeof(f->gcfg.module), "%s", f->dir);
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: module ", ": not a regular file");
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

static void test_missing_staprun(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "hello 1 tcp\n@wait-term\n");
  snprintf(f->pcfg.staprun, sizeof(f->pcfg.staprun), "/nonexistent/staprun");
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: Staprun /nonexistent/staprun: No such file",
           "apt-get install systemtap-runtime");
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

static void test_refused_value_is_logged(void **state) {
  struct fixture *f = *state;
  recorder_refuse_type("no_such_type");
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\n"
         "derive tcp no_such_type x 1\n"
         "derive tcp protocol_counter retransmits 2\n"
         "end 1 2\n"
         "@wait-term\n");
  start(f);
  WAIT_VALUES(1);
  stop(f);
  assert_int_equal(recorder_size(), 1);
  assert_string_equal(nth(0).type, "protocol_counter");
  assert_logged(LOG_WARNING, "group tcp: value tcp/no_such_type/x not "
                             "dispatched: test recorder refuses this type");
}

static void test_bad_lines_counted_and_rate_limited(void **state) {
  struct fixture *f = *state;
  char text[4096] = "hello 1 tcp\n";
  for (int i = 0; i < 25; i++) {
    size_t len = strlen(text);
    snprintf(text + len, sizeof(text) - len, "garbage %d\n", i);
  }
  strcat(text, "begin 1\n"
               "derive tcp protocol_counter retransmits 1\n"
               "end 1 1\n"
               "@wait-term\n");
  replay(f, 0, text);
  start(f);
  WAIT_VALUES(1);
  assert_int_equal(stats(f).bad_lines, 25);
  stop(f);
  assert_logged(LOG_WARNING,
                "group tcp: bad line from the module (unknown record type): "
                "garbage 0");
  /* Ten lines a minute per group, the rest suppressed. */
  assert_int_equal(log_count(LOG_WARNING, "bad line from the module"), 10);
  assert_not_logged(LOG_WARNING, "garbage 10");
}

/* One MaxSeries for every kind: counters (one series whatever their data
 * sources), gauges and notifications (a notification on a value's series
 * takes no extra place). */
static void test_max_series(void **state) {
  struct fixture *f = *state;
  f->gcfg.max_series = 3;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\n"
         "derive tcp protocol_counter a 1\n"
         "derive tcp if_octets - 5 6\n"
         "gauge tcp gauge g 1\n"
         "gauge tcp gauge h 2\n"
         "notify warning tcp protocol_counter n new instance\n"
         "notify warning tcp protocol_counter a on a known series\n"
         "derive tcp protocol_counter c 1\n"
         "end 1 7\n"
         "begin 2\ngauge tcp gauge g 3\ngauge tcp gauge h 4\nend 2 2\n"
         "info done\n"
         "@wait-term\n");
  start(f);
  WAIT_LOG(LOG_INFO, "module says: done");
  stop(f);
  assert_int_equal(recorder_size(), 5);
  const char *want[] = {"a", "", "g", "a", "g"};
  for (size_t i = 0; i < ARRAY_SIZE(want); i++)
    assert_string_equal(nth(i).type_instance, want[i]);
  assert_int_equal(nth(1).derives[1], 6);
  assert_int_equal(nth(3).kind, RECORD_NOTIFY);
  assert_int_equal(stats(f).series_dropped, 4);
  assert_logged(LOG_WARNING, "group tcp: more than MaxSeries (3) series; "
                             "tcp/gauge/h is not dispatched");
  assert_logged(LOG_WARNING, "tcp/protocol_counter/n is not dispatched");
  assert_logged(LOG_WARNING, "tcp/protocol_counter/c is not dispatched");
}

static void test_gaps_and_discarded_batches(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\nend 1 0\n"
         "begin 3\nend 3 0\n"
         "begin 4\nderive tcp protocol_counter x 1\nend 4 2\n"
         "begin 5\nderive tcp protocol_counter x 1\n"
         "@exit 0\n");
  replay(f, 2, "@wait-term\n");
  start(f);
  WAIT_LOG(LOG_NOTICE, "restarting");
  stop(f);
  struct group_stats s = stats(f);
  assert_int_equal(s.batches, 2);
  assert_int_equal(s.gaps, 1);
  assert_int_equal(s.discarded, 2);
  assert_logged(LOG_WARNING, "group tcp: 1 batch(es) missing before batch 3");
  assert_logged(LOG_WARNING, "batch discarded: end COUNT differs");
  assert_logged(LOG_WARNING,
                "batch discarded: the module's output ended inside it");
  assert_int_equal(recorder_size(), 0);
}

/* Output that comes garbled batch after batch (staprun's reader lost its
 * place in the relay buffer: every batch cut, the module running on) gets
 * the module restarted after GROUP_LOST_IN_A_ROW batches cut (a begin before
 * their end) with none complete; the new run's values flow. Cut batches
 * with a complete one between them do not. */
static void test_garbled_output_restarts(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter x 1\nend 1 1\n"
         "begin 2\nderive tcp protocol_counter x 2\n"
         "begin 3\nderive tcp protocol_counter x 3\nend 3 1\n"
         "begin 4\nderive tcp protocol_counter x 4\n"
         "E\t\001derive tcp protocol_counter x 4\n"
         "debegin 5\nderive tcp protocol_counter x 5\n"
         "begin 6\nderive tcp protocol_counter x 6\n"
         "begin 7\n"
         "begin 8\n"
         "@wait-term\n");
  replay(f, 2,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter x 1\nend 1 1\n"
         "@wait-term\n");
  start(f);
  WAIT_LOG(LOG_ERR, "3 batches in a row cut and none complete");
  WAIT_VALUES(3);
  stop(f);
  struct group_stats s = stats(f);
  assert_int_equal(s.starts, 2);
  assert_int_equal(s.batches, 3);
  assert_logged(LOG_ERR, "group tcp: 3 batches in a row cut and none "
                         "complete: the module's output arrives cut or "
                         "garbled");
  assert_logged(LOG_ERR, "raise BufferSize");
  assert_logged(LOG_NOTICE, "restarting staprun in");
  /* x 1 and x 3 from the first run, then the new run's x 1 continues the
   * series (offsets carry it across the restart). */
  assert_int_equal(recorder_size(), 3);
  assert_int_equal(nth(0).derive, 1);
  assert_int_equal(nth(1).derive, 3);
  assert_int_equal(nth(2).derive, 4);
}

static void test_overlong_line(void **state) {
  struct fixture *f = *state;
  char *text = malloc(8192);
  assert_non_null(text);
  strcpy(text, "hello 1 tcp\nbegin 1\nderive tcp protocol_counter x 1\n");
  size_t len = strlen(text);
  memset(text + len, 'x', 3000);
  strcpy(text + len + 3000, "\nend 1 1\n"
                            "begin 2\nderive tcp protocol_counter x 2\n"
                            "end 2 1\n@wait-term\n");
  replay(f, 0, text);
  free(text);
  start(f);
  WAIT_VALUES(1);
  stop(f);
  assert_int_equal(recorder_size(), 1);
  assert_int_equal(nth(0).derive, 2);
  struct group_stats s = stats(f);
  assert_int_equal(s.bad_lines, 1);
  assert_int_equal(s.discarded, 1);
  assert_logged(LOG_WARNING, "bad line from the module (longer than 1023");
}

/* A counter that goes back within a session is held at its highest value,
 * counted and logged, and climbs again once the module's value passes it;
 * the next run's hello still adds the session's highest value. */
static void test_decrease_within_session(void **state) {
  struct fixture *f = *state;
  replay(f, 1,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter retransmits 9\nend 1 1\n"
         "begin 2\nderive tcp protocol_counter retransmits 5\nend 2 1\n"
         "begin 3\nderive tcp protocol_counter retransmits 9\nend 3 1\n"
         "begin 4\nderive tcp protocol_counter retransmits 5\nend 4 1\n"
         "begin 5\nderive tcp protocol_counter retransmits 12\nend 5 1\n"
         "begin 6\nderive tcp protocol_counter retransmits 0\nend 6 1\n"
         "@exit 1\n");
  replay(f, 2,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter retransmits 0\nend 1 1\n"
         "begin 2\nderive tcp protocol_counter retransmits 3\nend 2 1\n"
         "info run 2 done\n"
         "@wait-term\n");
  replay(f, 0, "@exit 3\n");
  start(f);
  WAIT_LOG(LOG_INFO, "module says: run 2 done");
  stop(f);

  int64_t v[16];
  const int64_t want[] = {9, 9, 9, 9, 12, 12, 12, 15};
  size_t n = recorder_derives("retransmits", v, ARRAY_SIZE(v));
  assert_int_equal(n, ARRAY_SIZE(want));
  for (size_t i = 0; i < n; i++)
    if (v[i] != want[i])
      fail_msg("retransmits value %zu is %lld, expected %lld", i + 1,
               (long long)v[i], (long long)want[i]);
  struct group_stats s = stats(f);
  assert_int_equal(s.decreases, 3);
  assert_int_equal(s.batches, 8);
  assert_int_equal(s.bad_lines + s.discarded + s.duplicates, 0);
  assert_logged(LOG_WARNING,
                "group tcp: counter tcp/protocol_counter/retransmits#0 went "
                "back from 9 to 5 within one module session (not a restart); "
                "it stays at 9 until the module's value is back at 9");
  assert_logged(LOG_WARNING,
                "group tcp: counter tcp/protocol_counter/retransmits#0 went "
                "back from 12 to 0",
                "stays at 12 until the module's value is back at 12");
  assert_int_equal(log_count(LOG_WARNING, "went back"), 3);
}

/* Each data source of a multi-value type is its own series. */
static void test_decrease_of_one_data_source(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\nderive tcp if_octets - 100 200\nend 1 1\n"
         "begin 2\nderive tcp if_octets - 150 50\nend 2 1\n"
         "begin 3\nderive tcp if_octets - 160 260\nend 3 1\n"
         "info done\n"
         "@wait-term\n");
  start(f);
  WAIT_LOG(LOG_INFO, "module says: done");
  stop(f);
  assert_int_equal(recorder_size(), 3);
  const int64_t want[3][2] = {{100, 200}, {150, 200}, {160, 260}};
  for (size_t i = 0; i < 3; i++) {
    struct dispatched d = nth(i);
    assert_int_equal(d.nvalues, 2);
    if (d.derives[0] != want[i][0] || d.derives[1] != want[i][1])
      fail_msg("value %zu: rx %lld tx %lld, expected %lld %lld", i + 1,
               (long long)d.derives[0], (long long)d.derives[1],
               (long long)want[i][0], (long long)want[i][1]);
  }
  assert_int_equal(stats(f).decreases, 1);
  assert_logged(LOG_WARNING, "counter tcp/if_octets/#1 went back from 200 to "
                             "50");
}

/* A batch naming one series twice is refused whole: not one of its values
 * or notifications is dispatched; it is counted as discarded and as a
 * duplicate, and the log names the series. */
static void test_duplicate_series_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter retransmits 1\nend 1 1\n"
         "begin 2\n"
         "derive tcp protocol_counter retransmits 7\n"
         "gauge tcp-5001 gauge - 1.5\n"
         "notify warning tcp protocol_counter retransmits climbing\n"
         "derive tcp protocol_counter retransmits 700\n"
         "end 2 4\n"
         "begin 3\ngauge tcp gauge - 1\ngauge tcp gauge - 2\nend 3 2\n"
         "begin 4\nderive tcp protocol_counter retransmits 8\nend 4 1\n"
         "info done\n"
         "@wait-term\n");
  start(f);
  WAIT_LOG(LOG_INFO, "module says: done");
  stop(f);
  int64_t v[8];
  assert_int_equal(recorder_derives("retransmits", v, ARRAY_SIZE(v)), 2);
  assert_int_equal(v[0], 1);
  assert_int_equal(v[1], 8); /* batch 2's 7 and 700 are not taken */
  assert_int_equal(recorder_size(), 2);
  struct group_stats s = stats(f);
  assert_int_equal(s.batches, 2);
  assert_int_equal(s.discarded, 2);
  assert_int_equal(s.duplicates, 2);
  assert_int_equal(s.decreases, 0);
  assert_logged(LOG_WARNING,
                "group tcp: batch 2 discarded: it names series "
                "tcp/protocol_counter/retransmits twice; none of its values "
                "is dispatched");
  assert_logged(LOG_WARNING, "group tcp: batch 3 discarded: it names series "
                             "tcp/gauge/- twice");
}

/* A second hello in one staprun run is a bad line: no new session, so no
 * offset is folded in and the counter goes on as the module prints it. The
 * next run's hello starts a session, and its offsets add as ever. */
static void test_second_hello_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 1,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter retransmits 5\nend 1 1\n"
         "hello 1 tcp\n"
         "begin 2\nderive tcp protocol_counter retransmits 7\nend 2 1\n"
         "begin 3\n"
         "hello 1 tcp\n"
         "derive tcp protocol_counter retransmits 8\n"
         "end 3 1\n"
         "begin 4\nderive tcp protocol_counter retransmits 9\nend 4 1\n"
         "@exit 1\n");
  replay(f, 2,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter retransmits 1\nend 1 1\n"
         "info run 2 done\n"
         "@wait-term\n");
  replay(f, 0, "@exit 3\n");
  start(f);
  WAIT_LOG(LOG_INFO, "module says: run 2 done");
  stop(f);
  int64_t v[8];
  assert_int_equal(recorder_derives("retransmits", v, ARRAY_SIZE(v)), 4);
  assert_int_equal(v[0], 5);
  assert_int_equal(v[1], 7); /* not 12: the second hello folded nothing */
  assert_int_equal(v[2], 9); /* batch 3 held the hello: discarded */
  assert_int_equal(v[3], 10);
  struct group_stats s = stats(f);
  assert_int_equal(s.bad_lines, 2);
  assert_int_equal(s.discarded, 1);
  assert_int_equal(s.gaps, 1);
  assert_int_equal(s.batches, 4);
  assert_int_equal(s.starts, 2);
  assert_int_equal(s.decreases, 0);
  assert_logged(LOG_WARNING,
                "group tcp: bad line from the module (a second hello in one "
                "staprun run; it starts no new session): hello 1 tcp");
  /* One "is up" per run. */
  assert_int_equal(log_count(LOG_INFO, "group tcp: module ", " is up"), 2);
}

/* ---- Trust: what is run and loaded ------------------------------------- */

static bool started_once(void *arg) {
  return stats(arg).starts >= 1 && stats(arg).running;
}

/* A module in a directory others can write is not loaded; the check runs
 * before every start, so fixing the mode heals the group without a
 * restart of collectd. */
static void test_module_in_writable_directory_refused(void **state) {
  struct fixture *f = *state;
  char sub[PATH_MAX];
  path_join(sub, sizeof(sub), f->dir, "modules");
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(chmod(sub, 0777), 0);
  path_join(f->gcfg.module, sizeof(f->gcfg.module), sub,
            "collectd_stap_tcp.ko");
  char replay_file[PATH_MAX];
  snprintf(replay_file, sizeof(replay_file), "%s", f->gcfg.module);
  write_file(replay_file, "hello 1 tcp\n@wait-term\n");
  start(f);
  char what[PATH_MAX * 4];
  snprintf(what, sizeof(what),
           "group tcp: module %s: directory %s is writable by its group and "
           "others (mode 0777); fix with chmod go-w %s. Not loaded",
           f->gcfg.module, sub, sub);
  WAIT_LOG(LOG_ERR, what);
  WAIT_LOG(LOG_NOTICE, "group tcp: restarting staprun in");
  assert_int_equal(stats(f).starts, 0);

  assert_int_equal(chmod(sub, 0755), 0);
  if (!wait_until(started_once, f, WAIT_MS)) {
    log_dump();
    fail_msg("the group did not start once the directory was fixed");
  }
  stop(f);
  assert_int_equal(log_count(LOG_INFO, "group tcp: module ", " is up"), 1);
}

static void test_writable_module_file_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "hello 1 tcp\n@wait-term\n");
  assert_int_equal(chmod(f->module, 0664), 0);
  start(f);
  char what[PATH_MAX * 4];
  snprintf(what, sizeof(what),
           "group tcp: module %s: file %s is writable by its group (mode "
           "0664); fix with chmod g-w %s",
           f->module, f->module, f->module);
  WAIT_LOG(LOG_ERR, what);
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

/* Tests may run as root: a file given to nobody has a foreign owner. */
static void test_module_of_another_owner_refused(void **state) {
  struct fixture *f = *state;
  if (geteuid() != 0)
    skip(); /* only root can give a file away */
  replay(f, 0, "hello 1 tcp\n@wait-term\n");
  assert_int_equal(chown(f->module, 65534, 65534), 0);
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: module ", ": file ", " is owned by user 65534",
           "not root; fix with chown root ");
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

static void test_module_symlink_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "hello 1 tcp\n@wait-term\n");
  path_join(f->gcfg.module, sizeof(f->gcfg.module), f->dir, "link.ko");
  assert_int_equal(symlink(f->module, f->gcfg.module), 0);
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: module ", "link.ko is a symbolic link",
           "O_NOFOLLOW");
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

static void test_staprun_in_writable_directory_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "hello 1 tcp\n@wait-term\n");
  char bin[PATH_MAX];
  path_join(bin, sizeof(bin), f->dir, "bin");
  assert_int_equal(mkdir(bin, 0755), 0);
  assert_int_equal(chmod(bin, 0775), 0);
  path_join(f->pcfg.staprun, sizeof(f->pcfg.staprun), bin, "staprun");
  copy_file(FAKE_STAPRUN, f->pcfg.staprun);
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: Staprun ", "/bin/staprun: directory ",
           "/bin is writable by its group (mode 0775); fix with chmod g-w",
           "Not run: collectd runs it as root");
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

/* ---- Parameters ---------------------------------------------------------- */

static void test_param_not_in_list_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "hello 1 tcp\ninfo up\n@wait-term\n");
  params_list(f, "# Public parameters of tcp\ninterval_ms\nmax_ports\n");
  f->gcfg.nparams = 1;
  snprintf(f->gcfg.params[0].name, CONFIG_PARAM_NAME_SIZE, "ports");
  snprintf(f->gcfg.params[0].value, CONFIG_PARAM_VALUE_SIZE, "5");
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: Param `ports' is not a parameter of module ",
           "collectd_stap_tcp.ko; allowed: interval_ms, max_ports (from ",
           "collectd_stap_tcp.params). The module is not loaded.");
  assert_int_equal(stats(f).starts, 0);
  /* The list is read again at each start: a rebuilt module heals it. */
  params_list(f, "interval_ms\nmax_ports\nports\n");
  WAIT_LOG(LOG_INFO, "group tcp: module says: up");
  stop(f);
}

static void test_params_without_list_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "hello 1 tcp\n@wait-term\n");
  f->gcfg.nparams = 1;
  snprintf(f->gcfg.params[0].name, CONFIG_PARAM_NAME_SIZE, "max_ports");
  snprintf(f->gcfg.params[0].value, CONFIG_PARAM_VALUE_SIZE, "5");
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: no parameter list ",
           "/collectd_stap_tcp.params beside the module",
           "rebuild the module with `make modules'");
  stop(f);
  assert_int_equal(stats(f).starts, 0);
}

/* ---- A module left loaded ------------------------------------------------ */

static char *detached(struct fixture *f) {
  char path[PATH_MAX];
  path_join(path, sizeof(path), f->dir, "detached");
  return read_file(path);
}

static const char good_run[] = "@insert\n"
                               "hello 1 tcp\n"
                               "info run up\n"
                               "@wait-term\n"
                               "@on-term\n"
                               "@remove\n";

/* A collectd killed with its keeper leaves the module loaded: at the start
 * it is detached first, with the same Staprun. */
static void test_leftover_detached_at_start(void **state) {
  struct fixture *f = *state;
  write_file(f->proc_modules,
             "nf_tables 286720 0 - Live 0x0000000000000000\n"
             "collectd_stap_tcp 16384 0 - Live 0x0000000000000000 (OE)\n"
             "collectd_stap_tcpx 16384 0 - Live 0x0000000000000000 (OE)\n");
  replay(f, 0, good_run);
  start(f);
  WAIT_LOG(LOG_INFO, "group tcp: module says: run up");
  char *names = detached(f);
  assert_non_null(names);
  assert_string_equal(names, "collectd_stap_tcp\n");
  free(names);
  char *list = read_file(f->proc_modules);
  assert_non_null(strstr(list, "collectd_stap_tcpx "));
  assert_non_null(strstr(list, "nf_tables "));
  free(list);
  stop(f);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof(want), "`%s -d collectd_stap_tcp'", f->pcfg.staprun);
  assert_logged(LOG_NOTICE,
                "group tcp: module collectd_stap_tcp is still loaded (left "
                "behind by a staprun or collectd that was killed); detaching",
                want);
  assert_logged(LOG_NOTICE,
                "group tcp: module collectd_stap_tcp detached and removed");
  assert_int_equal(stats(f).starts, 1);
  assert_not_logged(LOG_ERR, "");
}

/* A staprun killed while its module was loaded: the next start detaches
 * the module before it inserts it again. */
static void test_leftover_detached_after_killed_run(void **state) {
  struct fixture *f = *state;
  replay(f, 1,
         "@insert\nhello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter retransmits 5\nend 1 1\n"
         "@kill-self 9\n");
  replay(f, 2, good_run);
  replay(f, 0, "@exit 3\n");
  start(f);
  WAIT_LOG(LOG_INFO, "group tcp: module says: run up");
  stop(f);
  assert_logged(LOG_ERR, "group tcp: staprun on ", "was killed by signal 9");
  assert_logged(LOG_NOTICE, "group tcp: module collectd_stap_tcp is still "
                            "loaded");
  assert_logged(LOG_NOTICE, "module collectd_stap_tcp detached and removed");
  assert_not_logged(LOG_ANY, "File exists");
  assert_int_equal(stats(f).starts, 2);
  char *list = read_file(f->proc_modules);
  assert_string_equal(list, ""); /* the good run removed its module */
  free(list);
}

/* `staprun -d' fails: the start fails with "File exists", and the hint for
 * it is given although staprun's last ERROR line is "Rerun with -R". */
static void test_detach_fails_hint_from_every_error_line(void **state) {
  struct fixture *f = *state;
  write_file(f->proc_modules, "collectd_stap_tcp 16384 1 - Live 0x0\n");
  char path[PATH_MAX];
  path_join(path, sizeof(path), f->dir, "detach.replay");
  write_file(path, "@stderr ERROR: module collectd_stap_tcp is in use\n"
                   "@exit 1\n");
  replay(f, 0, good_run);
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: staprun on ", "exited with status 1");
  stop(f);
  assert_logged(LOG_INFO, "group tcp: staprun -d: ERROR: module "
                          "collectd_stap_tcp is in use");
  assert_logged(LOG_INFO, "group tcp: `",
                " -d collectd_stap_tcp' exited with "
                "status 1");
  assert_logged(LOG_ERR,
                "group tcp: module collectd_stap_tcp is still loaded after `",
                "Remove it by hand: `staprun -d collectd_stap_tcp' or `rmmod "
                "collectd_stap_tcp'");
  char said[PATH_MAX + 256];
  snprintf(said, sizeof(said),
           "it said: ERROR: Couldn't insert module '%s': File exists; ERROR: "
           "Rerun with staprun option '-R' to remove this module.; a module "
           "of that name was still loaded",
           f->module);
  assert_logged(LOG_ERR, "group tcp: staprun on ", said,
                "the plugin detaches and removes it with `staprun -d NAME'",
                "(kernel " RELEASE ")");
}

/* `staprun -d' that hangs is killed after StopTimeout; the start goes on. */
static void test_detach_is_bounded(void **state) {
  struct fixture *f = *state;
  f->pcfg.stop_timeout_ms = 300;
  write_file(f->proc_modules, "collectd_stap_tcp 16384 0 - Live 0x0\n");
  char path[PATH_MAX];
  path_join(path, sizeof(path), f->dir, "detach.replay");
  write_file(path, "@ignore-term\n@sleep 60\n");
  replay(f, 0, "hello 1 tcp\ninfo run up\n@wait-term\n");
  uint64_t t0 = now_ms();
  start(f);
  WAIT_LOG(LOG_INFO, "group tcp: module says: run up");
  uint64_t took = now_ms() - t0;
  stop(f);
  assert_true(took >= 300);
  assert_true(took < WAIT_MS);
  assert_logged(LOG_WARNING, "group tcp: `",
                " -d collectd_stap_tcp' was killed by signal 9 (Killed) "
                "(killed after StopTimeout)");
  assert_logged(LOG_ERR, "module collectd_stap_tcp is still loaded after");
}

/* ---- What staprun says --------------------------------------------------- */

/* The last GROUP_ERRORS_KEPT ERROR lines are kept, the hints of all of
 * them given, the earlier ones counted. */
static void test_error_lines_kept_bounded(void **state) {
  struct fixture *f = *state;
  char text[2048] = "";
  for (int i = 1; i <= 12; i++) {
    size_t len = strlen(text);
    snprintf(text + len, sizeof(text) - len, "@stderr ERROR: line %d%s\n", i,
             i == 6 ? ": Function not implemented" : "");
  }
  strcat(text, "@stderr ERROR: Key was rejected by service\n@exit 1\n");
  replay(f, 0, text);
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: staprun on ", "exited with status 1");
  stop(f);
  assert_logged(LOG_ERR,
                "it said: (5 earlier ERROR lines) ERROR: line 6: Function not "
                "implemented; ERROR: line 7; ",
                "ERROR: line 12; ERROR: Key was rejected by service; this "
                "kernel cannot load modules",
                "; the kernel enforces module signatures");
  assert_not_logged(LOG_ERR, "it said: ERROR: line 1;");
}

static void test_untrusted_bytes_escaped(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "\x1b[31mred\x01 \\ line\n"
         "info caf\xc3\xa9\n"
         "@stderr ERROR: bell \x07 here\n"
         "@wait-term\n");
  start(f);
  WAIT_LOG(LOG_ERR, "group tcp: staprun: ERROR: bell \\x07 here");
  stop(f);
  assert_logged(LOG_WARNING, "group tcp: bad line from the module (unknown "
                             "record type): \\x1b[31mred\\x01 \\\\ line");
  assert_logged(LOG_INFO, "group tcp: module says: caf\\xc3\\xa9");
  struct log_entry e;
  for (size_t i = 0; log_get(i, &e); i++)
    for (const char *p = e.msg; *p; p++)
      if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
        fail_msg("log line %zu holds byte 0x%02x: %s", i, (unsigned char)*p,
                 e.msg);
}

/* ---- A module that never says hello ------------------------------------ */

static void test_no_hello_logged_once(void **state) {
  struct fixture *f = *state;
  f->hello_min_ms = 0;
  f->gcfg.interval_ms = 200;
  replay(f, 0, "@stderr WARNING: still loading\n@wait-term\n");
  start(f);
  char what[PATH_MAX + 64];
  snprintf(what, sizeof(what),
           "group tcp: module %s has not said hello 0.4 s "
           "after its start",
           f->module);
  WAIT_LOG(LOG_WARNING, what, "first line must be `hello 1 tcp'",
           "Is staprun stuck (pid ", "see its own messages above");
  sleep_ms(1500);
  stop(f);
  assert_int_equal(log_count(LOG_WARNING, "has not said hello"), 1);
}

static void test_hello_in_time_not_logged(void **state) {
  struct fixture *f = *state;
  f->hello_min_ms = 0;
  f->gcfg.interval_ms = 200;
  replay(f, 0, "hello 1 tcp\n@wait-term\n");
  start(f);
  WAIT_LOG(LOG_INFO, "group tcp: module ", " is up");
  sleep_ms(1500);
  stop(f);
  assert_not_logged(LOG_ANY, "has not said hello");
}

/* ---- The plugin's own health series ------------------------------------ */

static void test_health_types_refused(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\nderive tcp stap_events batches 99\nend 1 1\n"
         "begin 2\ngauge tcp stap_running - 1\nend 2 1\n"
         "begin 3\nderive tcp stap_module probes_skipped 3\nend 3 1\n"
         "info done\n@wait-term\n");
  start(f);
  WAIT_LOG(LOG_INFO, "module says: done");
  stop(f);
  assert_int_equal(recorder_size(), 1);
  assert_string_equal(nth(0).type, "stap_module");
  struct group_stats s = stats(f);
  assert_int_equal(s.bad_lines, 2);
  assert_int_equal(s.discarded, 2);
  assert_int_equal(s.batches, 1);
  assert_logged(LOG_WARNING,
                "group tcp: bad line from the module (type stap_events is the "
                "plugin's own health series; a module reports its health as "
                "type stap_module): derive tcp stap_events batches 99");
  assert_logged(LOG_WARNING, "(type stap_running is the plugin's own");
}

/* ---- Stopping ------------------------------------------------------------ */

/* A stop reaches what staprun started too (its process group). */
static void test_stop_reaches_process_group(void **state) {
  struct fixture *f = *state;
  replay(f, 0, "hello 1 tcp\n@spawn-stray\n@wait-term\n");
  start(f);
  WAIT_LOG(LOG_INFO, "group tcp: staprun: stray ");
  struct log_entry e;
  assert_true(log_find(LOG_INFO, &e, "group tcp: staprun: stray "));
  pid_t stray = (pid_t)atoi(strstr(e.msg, "stray ") + 6);
  assert_true(stray > 0);
  assert_true(pid_running(stray));
  stop(f);
  if (!pid_wait_gone(stray, WAIT_MS)) {
    kill(stray, SIGKILL);
    fail_msg("staprun's child (pid %d) survived the stop", (int)stray);
  }
}

/* A thread stuck (here in a dispatch collectd does not return from) is
 * given up after the join's bound: shutdown is never hung. */
static void test_join_is_bounded(void **state) {
  struct fixture *f = *state;
  replay(f, 0,
         "hello 1 tcp\n"
         "begin 1\nderive tcp protocol_counter retransmits 1\nend 1 1\n"
         "@wait-term\n");
  recorder_block(true);
  start(f);
  uint64_t until = now_ms() + WAIT_MS;
  while (recorder_blocked_calls() == 0 && now_ms() < until)
    sleep_ms(10);
  assert_int_equal(recorder_blocked_calls(), 1);
  group_request_stop(&f->g);
  uint64_t t0 = now_ms();
  f->started = false;
  bool joined = group_join(&f->g, 300);
  uint64_t took = now_ms() - t0;
  assert_false(joined);
  assert_true(took >= 300 && took < 3000);
  assert_logged(LOG_ERR,
                "group tcp: its thread has not ended 0.3 s after it "
                "was asked to stop",
                "collectd's shutdown goes on without it");
  /* group_destroy leaves a group in use alone. */
  group_destroy(&f->g);
  assert_non_null(f->g.offsets);
  /* Once unblocked the thread stops staprun and ends by itself. */
  recorder_block(false);
  if (!wait_until(thread_done, &f->g, WAIT_MS)) {
    f->hung = true;
    fail_msg("the thread did not end once unblocked");
  }
  assert_logged(LOG_INFO, "group tcp: staprun stopped (exited with status 0)");
  pid_t pids[4];
  size_t n = started_pids(pids, ARRAY_SIZE(pids));
  assert_int_equal(n, 1);
  assert_true(pid_wait_gone(pids[0], WAIT_MS));
}

static void test_hints(void **state) {
  (void)state;
  assert_null(group_hint(""));
  assert_null(group_hint("ERROR: something else entirely"));
  assert_non_null(strstr(group_hint("insmod: File exists"),
                         "detaches and removes it with `staprun -d NAME'"));
  assert_non_null(
      strstr(group_hint("ERROR: Key was rejected by service"), "sign"));
  assert_non_null(
      strstr(group_hint("Operation not permitted"), "collectd needs root"));
  assert_non_null(
      strstr(group_hint("Invalid module format"), "built for another kernel"));
  assert_non_null(strstr(group_hint("No such file or directory"), "missing"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_normal_session),
      T(test_counters_monotonic_after_exit),
      T(test_counters_monotonic_after_signal),
      T(test_restart_backoff),
      T(test_hint_for_function_not_implemented),
      T(test_batch_after_stop_not_dispatched),
      T(test_stop_kills_after_stop_timeout),
      T(test_protocol_version_mismatch),
      T(test_module_of_another_group),
      T(test_missing_module),
      T(test_module_is_a_directory),
      T(test_missing_staprun),
      T(test_refused_value_is_logged),
      T(test_bad_lines_counted_and_rate_limited),
      T(test_max_series),
      T(test_gaps_and_discarded_batches),
      T(test_garbled_output_restarts),
      T(test_overlong_line),
      T(test_decrease_within_session),
      T(test_decrease_of_one_data_source),
      T(test_duplicate_series_refused),
      T(test_second_hello_refused),
      T(test_hints),
      T(test_module_in_writable_directory_refused),
      T(test_writable_module_file_refused),
      T(test_module_of_another_owner_refused),
      T(test_module_symlink_refused),
      T(test_staprun_in_writable_directory_refused),
      T(test_param_not_in_list_refused),
      T(test_params_without_list_refused),
      T(test_leftover_detached_at_start),
      T(test_leftover_detached_after_killed_run),
      T(test_detach_fails_hint_from_every_error_line),
      T(test_detach_is_bounded),
      T(test_error_lines_kept_bounded),
      T(test_untrusted_bytes_escaped),
      T(test_no_hello_logged_once),
      T(test_hello_in_time_not_logged),
      T(test_health_types_refused),
      T(test_stop_reaches_process_group),
      T(test_join_is_bounded),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("group", tests, NULL, NULL);
}
