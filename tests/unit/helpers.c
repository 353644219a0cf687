#include "helpers.h"

#ifndef HELPERS_NO_SEAMS
#include "plugin/dispatch.h"
#include "plugin/log.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void unit_filter_from_env(void) {
  const char *filter = getenv("UNIT_FILTER");
  if (filter != NULL && filter[0] != '\0')
    cmocka_set_test_filter(filter);
}

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000,
                        .tv_nsec = (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

bool wait_until(bool (*pred)(void *), void *arg, unsigned timeout_ms) {
  uint64_t until = now_ms() + timeout_ms;
  for (;;) {
    if (pred(arg))
      return true;
    if (now_ms() >= until)
      return false;
    sleep_ms(10);
  }
}

/* ---- Log capture ------------------------------------------------------- */

#define LOG_MAX 4096

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_entry log_entries[LOG_MAX];
static size_t log_n;

void log_capture(int level, const char *msg) {
  pthread_mutex_lock(&log_lock);
  if (log_n < LOG_MAX) {
    struct log_entry *e = &log_entries[log_n++];
    e->level = level;
    e->at_ms = now_ms();
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
  }
  pthread_mutex_unlock(&log_lock);
}

void log_reset(void) {
  pthread_mutex_lock(&log_lock);
  log_n = 0;
  pthread_mutex_unlock(&log_lock);
}

size_t log_size(void) {
  pthread_mutex_lock(&log_lock);
  size_t n = log_n;
  pthread_mutex_unlock(&log_lock);
  return n;
}

bool log_get(size_t i, struct log_entry *out) {
  pthread_mutex_lock(&log_lock);
  bool ok = i < log_n;
  if (ok)
    *out = log_entries[i];
  pthread_mutex_unlock(&log_lock);
  return ok;
}

static bool entry_matches(const struct log_entry *e, int level,
                          const char *const needles[]) {
  if (level != LOG_ANY && e->level != level)
    return false;
  for (size_t i = 0; needles[i] != NULL; i++)
    if (strstr(e->msg, needles[i]) == NULL)
      return false;
  return true;
}

size_t log_count_v(int level, const char *const needles[]) {
  size_t n = 0;
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < log_n; i++)
    if (entry_matches(&log_entries[i], level, needles))
      n++;
  pthread_mutex_unlock(&log_lock);
  return n;
}

bool log_find_v(int level, const char *const needles[], struct log_entry *out) {
  bool found = false;
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < log_n && !found; i++) {
    if (entry_matches(&log_entries[i], level, needles)) {
      found = true;
      if (out != NULL)
        *out = log_entries[i];
    }
  }
  pthread_mutex_unlock(&log_lock);
  return found;
}

struct log_wait_arg {
  int level;
  const char *const *needles;
};

static bool log_wait_pred(void *arg) {
  struct log_wait_arg *a = arg;
  return log_count_v(a->level, a->needles) > 0;
}

bool log_wait_v(int level, const char *const needles[], unsigned timeout_ms) {
  struct log_wait_arg a = {level, needles};
  return wait_until(log_wait_pred, &a, timeout_ms);
}

void log_dump(void) {
  pthread_mutex_lock(&log_lock);
  print_error("captured log (%zu lines):\n", log_n);
  for (size_t i = 0; i < log_n; i++)
    print_error("  [%d] %s\n", log_entries[i].level, log_entries[i].msg);
  pthread_mutex_unlock(&log_lock);
}

static void print_needles(const char *what, int level,
                          const char *const needles[]) {
  print_error("%s at level %d a line containing:", what, level);
  for (size_t i = 0; needles[i] != NULL; i++)
    print_error(" \"%s\"", needles[i]);
  print_error("\n");
}

void assert_logged_v(int level, const char *const needles[], const char *file,
                     int line) {
  if (log_count_v(level, needles) > 0)
    return;
  print_needles("expected", level, needles);
  log_dump();
  _fail(file, line);
}

void assert_not_logged_v(int level, const char *const needles[],
                         const char *file, int line) {
  if (log_count_v(level, needles) == 0)
    return;
  print_needles("did not expect", level, needles);
  log_dump();
  _fail(file, line);
}

/* ---- Dispatch recorder ------------------------------------------------- */

#define RECORDER_MAX 4096

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_unblocked = PTHREAD_COND_INITIALIZER;
static struct dispatched rec_entries[RECORDER_MAX];
static size_t rec_n;
static char rec_refused_type[RECORD_NAME_SIZE];
static bool rec_blocked;
static size_t rec_waiting;

void recorder_reset(void) {
  pthread_mutex_lock(&rec_lock);
  rec_n = 0;
  rec_refused_type[0] = '\0';
  rec_blocked = false;
  pthread_cond_broadcast(&rec_unblocked);
  pthread_mutex_unlock(&rec_lock);
}

void recorder_block(bool blocked) {
  pthread_mutex_lock(&rec_lock);
  rec_blocked = blocked;
  pthread_cond_broadcast(&rec_unblocked);
  pthread_mutex_unlock(&rec_lock);
}

size_t recorder_blocked_calls(void) {
  pthread_mutex_lock(&rec_lock);
  size_t n = rec_waiting;
  pthread_mutex_unlock(&rec_lock);
  return n;
}

#ifndef HELPERS_NO_SEAMS
/* Called with rec_lock held. */
static void wait_unblocked(void) {
  rec_waiting++;
  while (rec_blocked)
    pthread_cond_wait(&rec_unblocked, &rec_lock);
  rec_waiting--;
}
#endif

void recorder_refuse_type(const char *type) {
  pthread_mutex_lock(&rec_lock);
  snprintf(rec_refused_type, sizeof(rec_refused_type), "%s", type ? type : "");
  pthread_mutex_unlock(&rec_lock);
}

size_t recorder_size(void) {
  pthread_mutex_lock(&rec_lock);
  size_t n = rec_n;
  pthread_mutex_unlock(&rec_lock);
  return n;
}

bool recorder_get(size_t i, struct dispatched *out) {
  pthread_mutex_lock(&rec_lock);
  bool ok = i < rec_n;
  if (ok)
    *out = rec_entries[i];
  pthread_mutex_unlock(&rec_lock);
  return ok;
}

static bool recorder_pred(void *arg) {
  return recorder_size() >= *(size_t *)arg;
}

bool recorder_wait(size_t n, unsigned timeout_ms) {
  return wait_until(recorder_pred, &n, timeout_ms);
}

size_t recorder_derives(const char *type_instance, int64_t *out, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&rec_lock);
  for (size_t i = 0; i < rec_n && n < max; i++)
    if (rec_entries[i].kind == RECORD_DERIVE &&
        strcmp(rec_entries[i].type_instance, type_instance) == 0)
      out[n++] = rec_entries[i].derive;
  pthread_mutex_unlock(&rec_lock);
  return n;
}

#ifndef HELPERS_NO_SEAMS
static void record_dispatch(const struct group_config *g,
                            const struct record *r, const int64_t *derive) {
  pthread_mutex_lock(&rec_lock);
  wait_unblocked();
  if (rec_n < RECORDER_MAX) {
    struct dispatched *d = &rec_entries[rec_n++];
    memset(d, 0, sizeof(*d));
    d->kind = r->kind;
    memcpy(d->group, g->name, sizeof(d->group));
    d->interval_ms = g->interval_ms;
    memcpy(d->plugin_instance, r->plugin_instance, sizeof(d->plugin_instance));
    memcpy(d->type, r->type, sizeof(d->type));
    memcpy(d->type_instance, r->type_instance, sizeof(d->type_instance));
    d->nvalues = r->nvalues;
    for (size_t i = 0; i < r->nvalues && derive != NULL; i++)
      d->derives[i] = derive[i];
    d->derive = d->derives[0];
    d->gauge = r->gauge[0];
    d->severity = r->severity;
    memcpy(d->text, r->text, sizeof(d->text));
  }
  pthread_mutex_unlock(&rec_lock);
}

const char *dispatch_value(const struct group_config *g, const struct record *r,
                           const int64_t *derive) {
  pthread_mutex_lock(&rec_lock);
  bool refused =
      rec_refused_type[0] != '\0' && strcmp(rec_refused_type, r->type) == 0;
  pthread_mutex_unlock(&rec_lock);
  if (refused)
    return "test recorder refuses this type";
  record_dispatch(g, r, derive);
  return NULL;
}

void dispatch_notification(const struct group_config *g,
                           const struct record *r) {
  record_dispatch(g, r, 0);
}

void stap_log(int level, const char *format, ...) {
  char msg[1100];
  va_list ap;
  va_start(ap, format);
  vsnprintf(msg, sizeof(msg), format, ap);
  va_end(ap);
  log_capture(level, msg);
}
#endif

/* ---- Files ------------------------------------------------------------- */

/* Whether dir and every directory above it (links resolved) are owned by
 * root or this user and not writable by group or others: where the plugin
 * accepts what it loads. */
static bool trusted_dir(const char *dir) {
  char real[PATH_MAX];
  if (realpath(dir, real) == NULL)
    return false;
  for (;;) {
    struct stat st;
    if (stat(real, &st) != 0 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
        (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
      return false;
    if (strcmp(real, "/") == 0)
      return true;
    char *slash = strrchr(real, '/');
    slash[slash == real ? 1 : 0] = '\0';
  }
}

/* mkdir -p, mode 0755 whatever the umask; returns whether dir is trusted. */
static bool make_base(const char *dir) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s", dir);
  for (char *p = path + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(path, 0755) == 0)
        chmod(path, 0755);
      *p = c;
    }
    if (*p == '\0')
      break;
  }
  return trusted_dir(dir);
}

/* The build tree, unless the checkout sits where others can write (under
 * /tmp, as CI may put it): then the project's cache in $HOME. */
static const char *tmp_base(void) {
  static char base[PATH_MAX];
  const char *env = getenv("UNIT_TMPDIR");
  const char *home = getenv("HOME");
  if (env != NULL && env[0] != '\0')
    return env;
  if (make_base(TOP_SRCDIR "/build/tests/tmp"))
    return TOP_SRCDIR "/build/tests/tmp";
  snprintf(base, sizeof(base), "%s/.cache/collectd-stap/unit-tmp",
           home != NULL ? home : "/root");
  if (make_base(base))
    return base;
  print_error("neither %s nor %s is a directory only root (or you) can "
              "change; set UNIT_TMPDIR to one\n",
              TOP_SRCDIR "/build/tests/tmp", base);
  return base;
}

char *tmpdir_new(void) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof(path), "%s/collectd-stap-unit.XXXXXX", tmp_base());
  if (mkdtemp(path) == NULL) {
    print_error("mkdtemp %s: %s\n", path, strerror(errno));
    return NULL;
  }
  return strdup(path);
}

void tmpdir_remove(const char *dir) {
  if (dir == NULL)
    return;
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char path[PATH_MAX];
    path_join(path, sizeof(path), dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
      tmpdir_remove(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

void path_join(char *buf, size_t size, const char *dir, const char *name) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  assert_true(n > 0 && (size_t)n < size);
}

void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    fail_msg("cannot create %s: %s", path, strerror(errno));
  size_t len = strlen(text);
  assert_int_equal(fwrite(text, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, 0644), 0);
}

void copy_file(const char *from, const char *to) {
  char *text = read_file(from);
  struct stat st;
  if (text == NULL || stat(from, &st) != 0)
    fail_msg("cannot read %s: %s", from, strerror(errno));
  write_file(to, text);
  free(text);
  assert_int_equal(chmod(to, st.st_mode & 0755), 0);
}

char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  while (buf != NULL) {
    if (len + 1 == cap) {
      char *p = realloc(buf, cap * 2);
      if (p == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = p;
      cap *= 2;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    if (n == 0)
      break;
    len += n;
  }
  fclose(f);
  if (buf != NULL)
    buf[len] = '\0';
  return buf;
}

/* ---- Processes --------------------------------------------------------- */

bool pid_exists(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d", (int)pid);
  return pid > 0 && access(path, F_OK) == 0;
}

bool pid_running(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  char *stat = pid > 0 ? read_file(path) : NULL;
  if (stat == NULL)
    return false;
  /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses. */
  const char *p = strrchr(stat, ')');
  bool running = p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
  free(stat);
  return running;
}

static bool pid_gone_pred(void *arg) { return !pid_running(*(pid_t *)arg); }

bool pid_wait_gone(pid_t pid, unsigned timeout_ms) {
  return wait_until(pid_gone_pred, &pid, timeout_ms);
}

static bool pid_vanished_pred(void *arg) { return !pid_exists(*(pid_t *)arg); }

bool pid_wait_vanished(pid_t pid, unsigned timeout_ms) {
  return wait_until(pid_vanished_pred, &pid, timeout_ms);
}

size_t child_processes(pid_t *out, size_t max) {
  size_t n = 0;
  DIR *d = opendir("/proc/self/task");
  if (d == NULL)
    return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
    char *list = read_file(path);
    if (list == NULL)
      continue; /* the thread ended meanwhile */
    char *p = list, *end;
    for (long pid; (pid = strtol(p, &end, 10)) > 0; p = end) {
      if (n < max)
        out[n] = (pid_t)pid;
      n++;
    }
    free(list);
  }
  closedir(d);
  return n;
}

int test_thread_create(pthread_t *thread, void *(*start)(void *), void *arg,
                       const char *name) {
  (void)name;
  return pthread_create(thread, NULL, start, arg);
}

/* ---- Configuration trees ----------------------------------------------- */

#define CFG_ROOM 64

oconfig_item_t *cfg_new(const char *key) {
  oconfig_item_t *item = calloc(1, sizeof(*item));
  assert_non_null(item);
  item->key = strdup(key);
  item->values = calloc(CFG_ROOM, sizeof(*item->values));
  item->children = calloc(CFG_ROOM, sizeof(*item->children));
  assert_non_null(item->key);
  assert_non_null(item->values);
  assert_non_null(item->children);
  return item;
}

oconfig_item_t *cfg_add(oconfig_item_t *parent, const char *key) {
  assert_true(parent->children_num < CFG_ROOM);
  oconfig_item_t *child = &parent->children[parent->children_num++];
  child->key = strdup(key);
  child->values = calloc(CFG_ROOM, sizeof(*child->values));
  child->children = calloc(CFG_ROOM, sizeof(*child->children));
  /* collectd 5.12 does not set it reliably: the plugin must not use it. */
  child->parent = NULL;
  assert_non_null(child->key);
  assert_non_null(child->values);
  assert_non_null(child->children);
  return child;
}

static oconfig_value_t *cfg_value(oconfig_item_t *item, int type) {
  assert_true(item->values_num < CFG_ROOM);
  oconfig_value_t *v = &item->values[item->values_num++];
  v->type = type;
  return v;
}

oconfig_item_t *cfg_str(oconfig_item_t *item, const char *value) {
  cfg_value(item, OCONFIG_TYPE_STRING)->value.string = strdup(value);
  return item;
}

oconfig_item_t *cfg_num(oconfig_item_t *item, double value) {
  cfg_value(item, OCONFIG_TYPE_NUMBER)->value.number = value;
  return item;
}

oconfig_item_t *cfg_bool(oconfig_item_t *item, bool value) {
  cfg_value(item, OCONFIG_TYPE_BOOLEAN)->value.boolean = value;
  return item;
}

static void cfg_free_contents(oconfig_item_t *item) {
  for (int i = 0; i < item->values_num; i++)
    if (item->values[i].type == OCONFIG_TYPE_STRING)
      free(item->values[i].value.string);
  for (int i = 0; i < item->children_num; i++)
    cfg_free_contents(&item->children[i]);
  free(item->values);
  free(item->children);
  free(item->key);
}

void cfg_free(oconfig_item_t *item) {
  if (item == NULL)
    return;
  cfg_free_contents(item);
  free(item);
}
