/* Parses the <Plugin stap> block. Errors name the group and the option and
 * say how to fix it; a broken <Group> is left out instead of stopping
 * collectd. Also checks the files the configuration names before the plugin
 * runs or loads them (a root daemon trusts only what only root can change),
 * and a module's parameter list. */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const config_known_groups[] = {
    "tcp",    "netdev",  "udp",    "netfilter", "ipmib",
    "socket", "connect", "accept", "drops",     NULL};

#define ERR(...) stap_log(LOG_ERR, "stap plugin: " __VA_ARGS__)

void config_defaults(struct plugin_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  snprintf(cfg->staprun, sizeof(cfg->staprun), "%s", CONFIG_DEFAULT_STAPRUN);
  snprintf(cfg->procfs_dir, sizeof(cfg->procfs_dir), "%s",
           CONFIG_DEFAULT_PROCFS_DIR);
  snprintf(cfg->proc_modules, sizeof(cfg->proc_modules), "%s",
           CONFIG_DEFAULT_PROC_MODULES);
  cfg->restart_delay_ms = CONFIG_DEFAULT_RESTART_DELAY_MS;
  cfg->restart_delay_max_ms = CONFIG_DEFAULT_RESTART_DELAY_MAX_MS;
  cfg->stop_timeout_ms = CONFIG_DEFAULT_STOP_TIMEOUT_MS;
}

void config_free(struct plugin_config *cfg) {
  free(cfg->groups);
  cfg->groups = NULL;
  cfg->ngroups = 0;
}

/* "group tcp: option `Interval'", or "option `StopTimeout'" outside a
 * <Group> (group NULL): every message about an option starts with it. The
 * group is passed down: collectd 5.12 does not set ci->parent reliably. */
static const char *where(const char *group, const oconfig_item_t *ci) {
  static __thread char buf[160];
  if (group != NULL)
    snprintf(buf, sizeof(buf), "group %s: option `%s'", group, ci->key);
  else
    snprintf(buf, sizeof(buf), "option `%s'", ci->key);
  return buf;
}

static int get_string(const char *group, const oconfig_item_t *ci, char *dst,
                      size_t size) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERR("%s takes exactly one string argument (in double quotes).",
        where(group, ci));
    return -1;
  }
  const char *s = ci->values[0].value.string;
  if (s[0] == '\0' || strlen(s) >= size) {
    ERR("%s must be between 1 and %zu characters.", where(group, ci), size - 1);
    return -1;
  }
  snprintf(dst, size, "%s", s);
  return 0;
}

/* A duration in seconds, as collectd's own Interval options. */
static int get_ms(const char *group, const oconfig_item_t *ci, double min_s,
                  double max_s, uint64_t *ms) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) {
    ERR("%s takes one number (seconds).", where(group, ci));
    return -1;
  }
  double v = ci->values[0].value.number;
  if (!isfinite(v) || v < min_s || v > max_s) {
    ERR("%s is %g: it must be between %g and %g seconds.", where(group, ci), v,
        min_s, max_s);
    return -1;
  }
  *ms = (uint64_t)llround(v * 1000.0);
  return 0;
}

static int get_count(const char *group, const oconfig_item_t *ci, double min,
                     double max, size_t *out) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) {
    ERR("%s takes one whole number.", where(group, ci));
    return -1;
  }
  double v = ci->values[0].value.number;
  if (!isfinite(v) || v != floor(v) || v < min || v > max) {
    ERR("%s is %g: it must be a whole number from %g to %g.", where(group, ci),
        v, min, max);
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
  const char *group = g->name;
  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERR("%s takes a name and a value, e.g. Param \"ephemeral_low\" 32768.",
        where(group, ci));
    return -1;
  }
  const char *name = ci->values[0].value.string;
  char value[CONFIG_PARAM_VALUE_SIZE];
  if (ci->values[1].type == OCONFIG_TYPE_NUMBER) {
    double v = ci->values[1].value.number;
    if (v != floor(v) || fabs(v) > 9.0e15) {
      ERR("%s \"%s\": SystemTap parameters are integers or strings, not %g.",
          where(group, ci), name, v);
      return -1;
    }
    snprintf(value, sizeof(value), "%.0f", v);
  } else if (ci->values[1].type == OCONFIG_TYPE_STRING) {
    snprintf(value, sizeof(value), "%s", ci->values[1].value.string);
  } else {
    ERR("%s \"%s\": the value must be a number or a string.", where(group, ci),
        name);
    return -1;
  }
  if (strlen(name) >= CONFIG_PARAM_NAME_SIZE || !param_name_ok(name)) {
    ERR("%s: \"%s\" is not a module parameter name (lower case letters, "
        "digits and _).",
        where(group, ci), name);
    return -1;
  }
  if (strcmp(name, "interval_ms") == 0) {
    ERR("%s: interval_ms is set from the group's Interval option; use "
        "Interval instead.",
        where(group, ci));
    return -1;
  }
  if (!param_value_ok(value)) {
    ERR("%s \"%s\": value \"%s\" may only hold letters, digits and _.:,/+-.",
        where(group, ci), name, value);
    return -1;
  }
  for (size_t i = 0; i < g->nparams; i++) {
    if (strcmp(g->params[i].name, name) == 0) {
      ERR("%s \"%s\" is given twice.", where(group, ci), name);
      return -1;
    }
  }
  if (g->nparams >= CONFIG_MAX_PARAMS) {
    ERR("%s: at most %d parameters per group.", where(group, ci),
        CONFIG_MAX_PARAMS);
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
    ERR("group %s: unknown probe group; known groups: %s. The group is not "
        "started.",
        name, known);
    return -1;
  }
  for (size_t i = 0; i < cfg->ngroups; i++) {
    if (strcmp(cfg->groups[i].name, name) == 0) {
      ERR("group %s: <Group \"%s\"> appears twice; the second one is "
          "ignored.",
          name, name);
      return -1;
    }
  }
  snprintf(g.name, sizeof(g.name), "%s", name);

  int errors = 0;
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *c = &ci->children[i];
    int rc;
    if (strcasecmp(c->key, "Module") == 0)
      rc = get_string(name, c, g.module, sizeof(g.module));
    else if (strcasecmp(c->key, "Interval") == 0)
      rc = get_ms(name, c, 0.1, 86400.0, &g.interval_ms);
    else if (strcasecmp(c->key, "MaxBatchRecords") == 0)
      rc = get_count(name, c, 1, 1000000, &g.max_batch_records);
    else if (strcasecmp(c->key, "MaxSeries") == 0)
      rc = get_count(name, c, 1, 1000000, &g.max_series);
    else if (strcasecmp(c->key, "BufferSize") == 0)
      rc = get_count(name, c, 1, CONFIG_MAX_BUFFER_MIB, &g.buffer_mib);
    else if (strcasecmp(c->key, "Param") == 0)
      rc = parse_param(c, &g);
    else {
      ERR("group %s: unknown option `%s'. Valid options: Module, Interval, "
          "MaxBatchRecords, MaxSeries, BufferSize, Param.",
          name, c->key);
      rc = -1;
    }
    if (rc != 0)
      errors++;
  }
  if (errors > 0) {
    ERR("group %s: <Group \"%s\"> has %d error(s) and is not started; fix "
        "them and restart collectd.",
        name, name, errors);
    return -1;
  }

  struct group_config *p =
      realloc(cfg->groups, (cfg->ngroups + 1) * sizeof(*p));
  if (p == NULL) {
    ERR("group %s: out of memory; the group is not started.", name);
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
      rc = get_string(NULL, c, cfg->staprun, sizeof(cfg->staprun));
    else if (strcasecmp(c->key, "ProcfsDir") == 0)
      rc = get_string(NULL, c, cfg->procfs_dir, sizeof(cfg->procfs_dir));
    else if (strcasecmp(c->key, "ProcModules") == 0)
      rc = get_string(NULL, c, cfg->proc_modules, sizeof(cfg->proc_modules));
    else if (strcasecmp(c->key, "ModuleDir") == 0)
      rc = get_string(NULL, c, cfg->module_dir, sizeof(cfg->module_dir));
    else if (strcasecmp(c->key, "RestartDelay") == 0)
      rc = get_ms(NULL, c, 0.1, 3600.0, &cfg->restart_delay_ms);
    else if (strcasecmp(c->key, "RestartDelayMax") == 0)
      rc = get_ms(NULL, c, 0.1, 86400.0, &cfg->restart_delay_max_ms);
    else if (strcasecmp(c->key, "StopTimeout") == 0)
      rc = get_ms(NULL, c, 0.1, 600.0, &cfg->stop_timeout_ms);
    else {
      ERR("unknown option `%s' in <Plugin stap>; it is ignored. Valid "
          "options: Staprun, ModuleDir, ProcfsDir, ProcModules, "
          "RestartDelay, RestartDelayMax, StopTimeout, <Group>.",
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
      ERR("group %s: the module path is longer than %d characters; the "
          "group is not started.",
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
    if (g->buffer_mib == 0)
      g->buffer_mib = CONFIG_DEFAULT_BUFFER_MIB;
    cfg->groups[kept++] = *g;
  }
  cfg->ngroups = kept;
  return errors;
}

/* ---- Trust: the files the plugin runs or loads ------------------------- */

/* SYMLOOP_MAX of Linux: more links than this on one path is a loop. */
#define TRUST_MAX_LINKS 40

/* A path being walked from /, one directory at a time, as the kernel would
 * resolve it, but checking each directory it passes through. */
struct walk {
  int dirfd;           /* the directory reached so far (O_PATH) */
  char dir[PATH_MAX];  /* its path, symbolic links resolved */
  char todo[PATH_MAX]; /* the rest of the path */
  int links;           /* symbolic links followed */
  char *why;
  size_t size;
};

/* "65534 (nobody)", or the bare number. */
static void owner_name(uid_t uid, char *buf, size_t size) {
  struct passwd pw, *found = NULL;
  char tmp[1024];
  if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &found) == 0 && found != NULL)
    snprintf(buf, size, "%u (%.100s)", (unsigned)uid, pw.pw_name);
  else
    snprintf(buf, size, "%u", (unsigned)uid);
}

/* Owned by root (or by collectd's own user, who controls collectd anyway)
 * and writable by nobody else: only they can change it. */
static bool trusted(const struct stat *st, const char *what, const char *path,
                    char *why, size_t size) {
  if (st->st_uid != 0 && st->st_uid != geteuid()) {
    char owner[128];
    owner_name(st->st_uid, owner, sizeof(owner));
    snprintf(why, size,
             "%s %s is owned by user %s, not root; fix with chown "
             "root %s",
             what, path, owner, path);
    return false;
  }
  /* Indexed by group-writable (1) and others-writable (2). */
  static const char *const who[] = {"", "its group", "others",
                                    "its group and others"};
  static const char *const fix[] = {"", "g-w", "o-w", "go-w"};
  int k = ((st->st_mode & S_IWGRP) ? 1 : 0) | ((st->st_mode & S_IWOTH) ? 2 : 0);
  if (k == 0)
    return true;
  snprintf(why, size,
           "%s %s is writable by %s (mode %04o); fix with chmod %s %s", what,
           path, who[k], (unsigned)(st->st_mode & 07777), fix[k], path);
  return false;
}

static enum config_trust walk_failed(struct walk *w, int err,
                                     const char *what) {
  if (err == ENOENT || err == ENOTDIR) {
    snprintf(w->why, w->size, "%s", strerror(err));
    return CONFIG_TRUST_MISSING;
  }
  snprintf(w->why, w->size, "%s: %s", what, strerror(err));
  return CONFIG_TRUST_ERROR;
}

/* w->dir joined with name, into buf. */
static int join(const char *dir, const char *name, char *buf, size_t size) {
  int n = snprintf(buf, size, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name);
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Goes back to / and checks it (the start, or an absolute link target). */
static enum config_trust walk_root(struct walk *w) {
  if (w->dirfd >= 0)
    close(w->dirfd);
  w->dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  snprintf(w->dir, sizeof(w->dir), "/");
  struct stat st;
  if (w->dirfd < 0 || fstat(w->dirfd, &st) != 0)
    return walk_failed(w, errno, "directory /");
  return trusted(&st, "directory", "/", w->why, w->size) ? CONFIG_TRUST_OK
                                                         : CONFIG_TRUST_REFUSED;
}

/* Takes the first component of w->todo into name ("" if none is left). */
static void pop(struct walk *w, char *name, size_t size) {
  const char *p = w->todo;
  while (*p == '/')
    p++;
  size_t n = strcspn(p, "/");
  snprintf(name, size, "%.*s", (int)n, p);
  memmove(w->todo, p + n, strlen(p + n) + 1);
}

static bool more(const struct walk *w) {
  return w->todo[strspn(w->todo, "/")] != '\0';
}

/* Puts the target of symbolic link fd (found in w->dir) in front of what is
 * left to walk. The link may be trusted: its directory was checked. */
static enum config_trust follow(struct walk *w, int fd, const char *name) {
  char target[PATH_MAX], todo[PATH_MAX];
  ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
  if (n < 0)
    return walk_failed(w, errno, name);
  target[n] = '\0';
  if (++w->links > TRUST_MAX_LINKS)
    return walk_failed(w, ELOOP, name);
  int len = snprintf(todo, sizeof(todo), "%s/%s", target, w->todo);
  if (len < 0 || (size_t)len >= sizeof(todo))
    return walk_failed(w, ENAMETOOLONG, name);
  memcpy(w->todo, todo, (size_t)len + 1);
  return target[0] == '/' ? walk_root(w) : CONFIG_TRUST_OK;
}

/* Walks into directory `name' of w->dir (or follows it, if it is a link). */
static enum config_trust enter(struct walk *w, const char *name) {
  char path[PATH_MAX];
  bool up = strcmp(name, "..") == 0;
  if (up) {
    snprintf(path, sizeof(path), "%s", w->dir);
    char *slash = strrchr(path, '/');
    slash[slash == path ? 1 : 0] = '\0';
  } else if (join(w->dir, name, path, sizeof(path)) != 0) {
    return walk_failed(w, ENAMETOOLONG, w->dir);
  }
  int fd = openat(w->dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int err = errno;
    if (fd >= 0)
      close(fd);
    return walk_failed(w, err, path);
  }
  enum config_trust rc = CONFIG_TRUST_OK;
  if (S_ISLNK(st.st_mode)) {
    rc = follow(w, fd, path);
    close(fd);
    return rc;
  }
  if (!S_ISDIR(st.st_mode))
    rc = walk_failed(w, ENOTDIR, path);
  else if (!trusted(&st, "directory", path, w->why, w->size))
    rc = CONFIG_TRUST_REFUSED;
  if (rc != CONFIG_TRUST_OK) {
    close(fd);
    return rc;
  }
  close(w->dirfd);
  w->dirfd = fd;
  memcpy(w->dir, path, strlen(path) + 1);
  return CONFIG_TRUST_OK;
}

/* The last component: opened with O_NOFOLLOW, then checked through the open
 * descriptor, so what is checked is what was opened. */
static enum config_trust open_last(struct walk *w, const char *name, int flags,
                                   int *out) {
  char path[PATH_MAX];
  if (join(w->dir, name, path, sizeof(path)) != 0)
    return walk_failed(w, ENAMETOOLONG, w->dir);
  /* O_NONBLOCK: opening a FIFO planted there must not hang the thread. */
  int extra = (flags & O_PATH) ? 0 : O_NONBLOCK | O_NOCTTY;
  int fd = openat(w->dirfd, name, flags | extra | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  /* O_NOFOLLOW fails with ELOOP on a link; with O_PATH it opens the link. */
  bool link = fd < 0 && errno == ELOOP;
  if (!link && (fd < 0 || fstat(fd, &st) != 0)) {
    int err = errno;
    if (fd >= 0)
      close(fd);
    return walk_failed(w, err, path);
  }
  enum config_trust rc = CONFIG_TRUST_OK;
  if (link || S_ISLNK(st.st_mode)) {
    snprintf(w->why, w->size,
             "%s is a symbolic link, and the plugin does not "
             "follow one there (O_NOFOLLOW); point the option at the file "
             "itself",
             path);
    rc = CONFIG_TRUST_REFUSED;
  } else if (!S_ISREG(st.st_mode)) {
    snprintf(w->why, w->size, "not a regular file");
    rc = CONFIG_TRUST_NOT_REGULAR;
  } else if (!trusted(&st, "file", path, w->why, w->size)) {
    rc = CONFIG_TRUST_REFUSED;
  }
  if (rc != CONFIG_TRUST_OK && fd >= 0)
    close(fd);
  else if (rc == CONFIG_TRUST_OK)
    *out = fd;
  return rc;
}

enum config_trust config_open_trusted(const char *path, int flags, int *fd,
                                      char *why, size_t size) {
  struct walk *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    snprintf(why, size, "out of memory");
    return CONFIG_TRUST_ERROR;
  }
  *w = (struct walk){.dirfd = -1, .why = why, .size = size};
  *fd = -1;
  char cwd[PATH_MAX] = "";
  /* A relative path is walked from / too: the directories above the working
   * directory matter as much as the ones below it. */
  enum config_trust rc = CONFIG_TRUST_OK;
  if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL)
    rc = walk_failed(w, errno, "the working directory");
  int n = snprintf(w->todo, sizeof(w->todo), "%s/%s", cwd, path);
  if (rc == CONFIG_TRUST_OK)
    rc = n < 0 || (size_t)n >= sizeof(w->todo)
             ? walk_failed(w, ENAMETOOLONG, path)
             : walk_root(w);
  char name[PATH_MAX];
  while (rc == CONFIG_TRUST_OK) {
    pop(w, name, sizeof(name));
    if (name[0] == '\0' || strcmp(name, ".") == 0) {
      if (!more(w)) {
        snprintf(why, size, "not a regular file");
        rc = CONFIG_TRUST_NOT_REGULAR;
      }
      continue;
    }
    if (!more(w)) {
      rc = open_last(w, name, flags, fd);
      break;
    }
    rc = enter(w, name);
  }
  if (w->dirfd >= 0)
    close(w->dirfd);
  free(w);
  return rc;
}

/* ---- A module's parameter list ----------------------------------------- */

void config_params_path(const char *module, char *out, size_t size) {
  size_t n = strlen(module);
  if (n > 3 && strcmp(module + n - 3, ".ko") == 0)
    n -= 3;
  snprintf(out, size, "%.*s.params", (int)n, module);
}

/* Reads fd to its end into text, which has room for one byte more than
 * CONFIG_PARAMS_MAX_BYTES. Returns NULL, or what is wrong. */
static const char *read_bounded(int fd, char *text, size_t *used) {
  *used = 0;
  for (;;) {
    ssize_t r = read(fd, text + *used, CONFIG_PARAMS_MAX_BYTES + 1 - *used);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return strerror(errno);
    if (r == 0)
      break;
    *used += (size_t)r;
    if (*used > CONFIG_PARAMS_MAX_BYTES)
      return "larger than 64 KiB; not a list written by `make modules'";
  }
  if (memchr(text, '\0', *used) != NULL)
    return "it holds a NUL byte";
  return NULL;
}

/* The whole list, NUL-terminated (the caller frees it), or NULL with why
 * filled; *missing tells a list that is not there from a bad one. */
static char *read_params(const char *path, bool *missing, char *why,
                         size_t size) {
  char reason[768];
  int fd;
  enum config_trust t =
      config_open_trusted(path, O_RDONLY, &fd, reason, sizeof(reason));
  *missing = t == CONFIG_TRUST_MISSING;
  if (t != CONFIG_TRUST_OK) {
    snprintf(why, size, "parameter list %s: %s", path, reason);
    return NULL;
  }
  char *text = malloc(CONFIG_PARAMS_MAX_BYTES + 1);
  size_t used = 0;
  const char *bad =
      text != NULL ? read_bounded(fd, text, &used) : "out of memory";
  close(fd);
  if (bad != NULL) {
    snprintf(why, size, "parameter list %s: %s", path, bad);
    free(text);
    return NULL;
  }
  text[used] = '\0';
  return text;
}

/* The next name of the list at *p (skipping comments and blank lines) into
 * name; returns 1, 0 at the end, or -1 with why filled for a line that is
 * not a name. */
static int next_param(const char **p, int *line, char *name, size_t size,
                      const char *path, char *why, size_t wsize) {
  while (**p != '\0') {
    const char *s = *p, *eol = s + strcspn(s, "\n");
    *p = *eol ? eol + 1 : eol;
    ++*line;
    while (s < eol && (*s == ' ' || *s == '\t'))
      s++;
    const char *e = eol;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
      e--;
    if (s == e || *s == '#')
      continue;
    snprintf(name, size, "%.*s", (int)(e - s), s);
    if ((size_t)(e - s) < size && param_name_ok(name))
      return 1;
    char shown[128];
    record_escape(s, (size_t)(e - s), shown, 60);
    snprintf(why, wsize,
             "parameter list %s line %d: `%s' is not a parameter "
             "name; rebuild the module with `make modules'",
             path, *line, shown);
    return -1;
  }
  return 0;
}

/* Whether name is in the list; fills allowed with the names (as many as
 * fit) for the message. Returns -1 for a bad list. */
static int listed(const char *text, const char *name, char *allowed,
                  size_t asize, const char *path, char *why, size_t wsize) {
  const char *p = text;
  int line = 0, rc, found = 0;
  size_t used = 0;
  char one[CONFIG_PARAM_NAME_SIZE];
  allowed[0] = '\0';
  while ((rc = next_param(&p, &line, one, sizeof(one), path, why, wsize)) > 0) {
    found |= strcmp(one, name) == 0;
    int n =
        snprintf(allowed + used, asize - used, "%s%s", used ? ", " : "", one);
    used = n < 0 || (size_t)n >= asize - used ? asize - 1 : used + (size_t)n;
  }
  return rc < 0 ? -1 : found;
}

int config_check_params(const struct group_config *g, char *why, size_t size) {
  if (g->nparams == 0)
    return 0;
  char path[PATH_MAX + 16];
  config_params_path(g->module, path, sizeof(path));
  bool missing;
  char *text = read_params(path, &missing, why, size);
  if (text == NULL && missing)
    snprintf(why, size,
             "no parameter list %s beside the module, so its "
             "Params cannot be checked: rebuild the module with `make "
             "modules' (it writes the list) and install both, or remove "
             "the group's Param options",
             path);
  if (text == NULL)
    return -1;
  int rc = 0;
  for (size_t i = 0; i < g->nparams && rc == 0; i++) {
    char allowed[400];
    int in = listed(text, g->params[i].name, allowed, sizeof(allowed), path,
                    why, size);
    if (in < 0)
      rc = -1;
    else if (in == 0) {
      snprintf(why, size,
               "Param `%s' is not a parameter of module %s; "
               "allowed: %s (from %s)",
               g->params[i].name, g->module, allowed[0] ? allowed : "none",
               path);
      rc = -1;
    }
  }
  free(text);
  return rc;
}
