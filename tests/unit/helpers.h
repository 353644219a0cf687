/* Shared helpers of the unit tests: captured log lines, a recorder behind
 * plugin/dispatch.h, temporary files, bounded waits, processes, and
 * hand-built configuration trees.
 *
 * helpers.c also defines the plugin's seams (stap_log, dispatch_value,
 * dispatch_notification) unless built with -DHELPERS_NO_SEAMS, as the ltdl
 * test host is: there the plugin brings its own. */
#ifndef UNIT_HELPERS_H
#define UNIT_HELPERS_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "plugin/config.h"
#include "plugin/record.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#ifndef TOP_SRCDIR
#error "build with -DTOP_SRCDIR=\"/path/to/the/repository\""
#endif
#define FAKE_STAPRUN TOP_SRCDIR "/tests/fake-staprun"

/* Every wait in the tests is bounded by this; a healthy run needs a small
 * fraction of it, so a slow machine does not make a test flaky. */
#define WAIT_MS 10000

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* UNIT_FILTER=PATTERN in the environment runs only the matching tests
 * (cmocka_set_test_filter; `*' and `?' are wildcards). */
void unit_filter_from_env(void);

uint64_t now_ms(void);
void sleep_ms(unsigned ms);

/* Calls pred(arg) every 10 ms until it is true (returns true) or timeout_ms
 * passed (returns false). */
bool wait_until(bool (*pred)(void *), void *arg, unsigned timeout_ms);

/* ---- Log capture ------------------------------------------------------- */

#define LOG_ANY (-1)

struct log_entry {
  int level;
  uint64_t at_ms; /* now_ms() when it was logged */
  char msg[1100];
};

/* Thread-safe; stap_log (and the test host's plugin_log) end up here. */
void log_capture(int level, const char *msg);
void log_reset(void);
size_t log_size(void);
bool log_get(size_t i, struct log_entry *out);
/* Entries at `level' (or LOG_ANY) whose message contains every one of the
 * NULL-terminated needles. */
size_t log_count_v(int level, const char *const needles[]);
bool log_find_v(int level, const char *const needles[], struct log_entry *out);
bool log_wait_v(int level, const char *const needles[], unsigned timeout_ms);
void log_dump(void);

#define NEEDLES(...)                                                           \
  (const char *const[]) { __VA_ARGS__, NULL }
#define log_count(level, ...) log_count_v(level, NEEDLES(__VA_ARGS__))
#define log_find(level, out, ...) log_find_v(level, NEEDLES(__VA_ARGS__), out)
#define log_wait(level, ...) log_wait_v(level, NEEDLES(__VA_ARGS__), WAIT_MS)

/* Fails the test, printing the captured log, unless a line at `level'
 * contains all the needles. */
#define assert_logged(level, ...)                                              \
  assert_logged_v(level, NEEDLES(__VA_ARGS__), __FILE__, __LINE__)
#define assert_not_logged(level, ...)                                          \
  assert_not_logged_v(level, NEEDLES(__VA_ARGS__), __FILE__, __LINE__)
void assert_logged_v(int level, const char *const needles[], const char *file,
                     int line);
void assert_not_logged_v(int level, const char *const needles[],
                         const char *file, int line);

/* ---- Dispatch recorder (plugin/dispatch.h) ----------------------------- */

struct dispatched {
  enum record_kind kind; /* RECORD_DERIVE, RECORD_GAUGE or RECORD_NOTIFY */
  char group[RECORD_NAME_SIZE];
  uint64_t interval_ms;
  char plugin_instance[RECORD_NAME_SIZE];
  char type[RECORD_NAME_SIZE];
  char type_instance[RECORD_NAME_SIZE];
  int64_t derive; /* the first value */
  double gauge;   /* the first value */
  size_t nvalues;
  int64_t derives[RECORD_MAX_VALUES];
  enum record_severity severity;
  char text[RECORD_TEXT_SIZE];
};

void recorder_reset(void);
/* dispatch_value refuses values of this type (NULL: none), as stap.c does
 * for a type missing from the TypesDB. */
void recorder_refuse_type(const char *type);
/* While blocked, dispatch_value and dispatch_notification wait (as a
 * collectd whose queue is stuck would): recorder_blocked_calls counts the
 * calls waiting. recorder_reset unblocks. */
void recorder_block(bool blocked);
size_t recorder_blocked_calls(void);
size_t recorder_size(void);
bool recorder_get(size_t i, struct dispatched *out);
bool recorder_wait(size_t n, unsigned timeout_ms);
/* The derive values dispatched for type_instance, in order; returns how
 * many (at most max). */
size_t recorder_derives(const char *type_instance, int64_t *out, size_t max);

/* ---- Files ------------------------------------------------------------- */

/* A fresh directory (mode 0700) where the plugin accepts what it loads
 * (it and every directory above it owned by root or the user running the
 * tests, not writable by group or others; so not under /tmp): under
 * $UNIT_TMPDIR, else TOP_SRCDIR "/build/tests/tmp" if that qualifies, else
 * $HOME/.cache/collectd-stap/unit-tmp. The caller frees the string. */
char *tmpdir_new(void);
/* Removes the directory and everything in it. */
void tmpdir_remove(const char *dir);
void path_join(char *buf, size_t size, const char *dir, const char *name);
/* Creates or replaces the file, mode 0644 whatever the umask. */
void write_file(const char *path, const char *text);
/* Copies a file, keeping its mode bits (the fake staprun next to a test's
 * fake /proc/modules). */
void copy_file(const char *from, const char *to);
/* The whole file, NUL-terminated, or NULL; the caller frees it. */
char *read_file(const char *path);

/* ---- Processes --------------------------------------------------------- */

/* Whether pid exists and is not a zombie. */
bool pid_running(pid_t pid);
/* Whether /proc/pid exists at all (zombies included). */
bool pid_exists(pid_t pid);
/* Waits (bounded) until pid no longer runs. */
bool pid_wait_gone(pid_t pid, unsigned timeout_ms);
/* Waits (bounded) until pid has no /proc entry: not even a zombie. */
bool pid_wait_vanished(pid_t pid, unsigned timeout_ms);
/* This process's children (zombies included), from /proc/self/task/ * /
 * children; returns how many, storing at most max. */
size_t child_processes(pid_t *out, size_t max);

/* group_start's thread creator: plain pthread_create. */
int test_thread_create(pthread_t *thread, void *(*start)(void *), void *arg,
                       const char *name);

/* ---- Configuration trees ----------------------------------------------- */

/* Items allocated here have room for 64 values and 64 children, so that
 * pointers to them stay valid while a tree is built. */
oconfig_item_t *cfg_new(const char *key);
oconfig_item_t *cfg_add(oconfig_item_t *parent, const char *key);
oconfig_item_t *cfg_str(oconfig_item_t *item, const char *value);
oconfig_item_t *cfg_num(oconfig_item_t *item, double value);
oconfig_item_t *cfg_bool(oconfig_item_t *item, bool value);
void cfg_free(oconfig_item_t *item);

#endif
