/* libFuzzer harness over the plugin's whole read path: bytes as they would
 * arrive on staprun's stdout and stderr pipes -> channel_read (line
 * splitting) -> on_stdout_line (record parsing, batch assembly, the series
 * table and counter offsets) -> what the plugin would dispatch. It includes
 * plugin/group.c to reach the group thread's own line callbacks (and
 * plugin/channel.c for the step of channel_read after its read(2)), so the
 * code under test is the plugin's, byte for byte; only the collectd glue
 * (dispatch_value, dispatch_notification, stap_log) is stood in for here, as
 * tests/unit/helpers.c does for the unit tests.
 *
 * Input: two header bytes, then the module's output.
 *   byte 0   group (byte0 / 16 % 9: config_known_groups order, tcp first)
 *            and the size of the reads the bytes arrive in
 *            (chunk_sizes[byte0 % 16]), so line splitting is tried at every
 *            boundary
 *   byte 1   bit 7 set: large limits (MaxSeries 256, MaxBatchRecords at
 *            its default, 4096); else MaxSeries 1 + (byte1 & 15),
 *            MaxBatchRecords 1 + 3 * ((byte1 >> 4) & 7). (The default
 *            MaxSeries, 4096, would only make every input slower: each hello
 *            walks the whole series table.)
 * "@restart\n" anywhere in the rest ends one staprun run and starts the next
 * (the offsets carry over, as when the plugin restarts staprun); in a run,
 * what follows "@stderr\n" is written to the stderr pipe instead.
 * tests/fuzz/seeds.sh writes inputs in this form.
 *
 * On every input it checks what the plugin promises (README.md,
 * modules/PROTOCOL.md) and aborts, which libFuzzer reports with the input,
 * when one does not hold:
 *   - a dispatched counter never goes below a value dispatched before for
 *     the same series and data source, across restarts too, and is >= 0;
 *   - every dispatched plugin instance is the group's own (GROUP or
 *     GROUP-...), and every name is 1-63 characters of [A-Za-z0-9_.:+,-]
 *     (an empty type instance allowed);
 *   - no value of the plugin's own health types (stap_running, stap_events)
 *     is dispatched from module data;
 *   - the series table never holds more than MaxSeries series, nor are more
 *     distinct series dispatched;
 *   - a batch never dispatches one series twice;
 *   - a gauge is finite or NaN;
 *   - every log line starts with "stap plugin: " and holds printable ASCII
 *     only (what a module or staprun prints is escaped). */
#include "../../plugin/channel.c"
#include "../../plugin/group.c"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes of the reads the input arrives in: single bytes, sizes around
 * RECORD_LINE_MAX, and the channel's whole read size. */
static const size_t chunk_sizes[16] = {
    1, 2, 3, 5, 7, 13, 64, 100, 511, 1000, 1022, 1023, 1024, 1025, 2048, 4096};

#define LARGE_MAX_SERIES 256
#define SEEN_SLOTS 1024 /* > 2 * the largest MaxSeries the header allows */

/* What the harness saw dispatched for one series during the input. Slots
 * are valid only in the current generation, so nothing is cleared per
 * input. */
struct seen {
  unsigned gen;
  char key[KEY_SIZE];
  uint64_t value_batch; /* 1 + stats.batches when last dispatched as value */
  size_t nds;
  int64_t last[RECORD_MAX_VALUES];
};

static struct seen seen[SEEN_SLOTS];
static unsigned gen;
static size_t seen_count;
static struct group *cur; /* the group the input is fed to */

__attribute__((noreturn, format(printf, 1, 2))) static void
violated(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "\nPROPERTY VIOLATED: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

static struct seen *seen_of(const char *key) {
  uint64_t h = 1469598103934665603ULL;
  for (const char *s = key; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  size_t i = (size_t)h & (SEEN_SLOTS - 1);
  while (seen[i].gen == gen && strcmp(seen[i].key, key) != 0)
    i = (i + 1) & (SEEN_SLOTS - 1);
  struct seen *s = &seen[i];
  if (s->gen != gen) {
    memset(s, 0, sizeof(*s));
    s->gen = gen;
    snprintf(s->key, sizeof(s->key), "%s", key);
    if (++seen_count > cur->cfg.max_series)
      violated("%zu distinct series dispatched, MaxSeries is %zu", seen_count,
               cur->cfg.max_series);
  }
  return s;
}

static void check_name(const char *what, const char *name, bool may_be_empty) {
  size_t n = strlen(name);
  if (n >= RECORD_NAME_SIZE || (n == 0 && !may_be_empty))
    violated("%s \"%s\" has %zu characters", what, name, n);
  for (size_t i = 0; i < n; i++)
    if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "0123456789_.:+,-",
               name[i]) == NULL)
      violated("%s \"%s\" has a byte 0x%02x", what, name,
               (unsigned char)name[i]);
}

/* What every dispatched value and notification must satisfy. */
static struct seen *check_dispatch(const struct group_config *g,
                                   const struct record *r) {
  if (g != &cur->cfg)
    violated("dispatched with another group's configuration");
  size_t gl = strlen(g->name);
  if (strncmp(r->plugin_instance, g->name, gl) != 0 ||
      (r->plugin_instance[gl] != '\0' && r->plugin_instance[gl] != '-'))
    violated("group %s dispatched plugin instance %s", g->name,
             r->plugin_instance);
  check_name("plugin instance", r->plugin_instance, false);
  check_name("type", r->type, false);
  check_name("type instance", r->type_instance, true);
  if (strcmp(r->type, "stap_running") == 0 ||
      strcmp(r->type, "stap_events") == 0)
    violated("module data dispatched as health type %s", r->type);
  if (offsets_count(cur->offsets) > g->max_series)
    violated("series table holds %zu series, MaxSeries is %zu",
             offsets_count(cur->offsets), g->max_series);
  char key[KEY_SIZE];
  snprintf(key, sizeof(key), "%s/%s/%s", r->plugin_instance, r->type,
           r->type_instance);
  return seen_of(key);
}

const char *dispatch_value(const struct group_config *g, const struct record *r,
                           const int64_t *derive) {
  struct seen *s = check_dispatch(g, r);
  if (r->kind != RECORD_DERIVE && r->kind != RECORD_GAUGE)
    violated("dispatch_value of record kind %d", (int)r->kind);
  if (r->nvalues < 1 || r->nvalues > RECORD_MAX_VALUES)
    violated("%zu values", r->nvalues);
  /* stats.batches counts dispatched batches after each one: the same
   * number throughout one batch's dispatch. */
  uint64_t batch = cur->stats.batches + 1;
  if (s->value_batch == batch)
    violated("series %s dispatched twice in one batch", s->key);
  s->value_batch = batch;
  if (r->kind == RECORD_GAUGE) {
    for (size_t i = 0; i < r->nvalues; i++)
      if (isinf(r->gauge[i]))
        violated("gauge %s#%zu is %g", s->key, i, r->gauge[i]);
    return NULL;
  }
  for (size_t i = 0; i < r->nvalues; i++) {
    if (derive[i] < 0)
      violated("counter %s#%zu dispatched as %lld", s->key, i,
               (long long)derive[i]);
    if (i < s->nds && derive[i] < s->last[i])
      violated("counter %s#%zu went back from %lld to %lld", s->key, i,
               (long long)s->last[i], (long long)derive[i]);
    s->last[i] = derive[i];
  }
  if (r->nvalues > s->nds)
    s->nds = r->nvalues;
  /* collectd refuses a type it does not know; so does the stand-in for one
   * name, so that the plugin's handling of a refusal runs too. */
  return strcmp(r->type, "fuzz_unknown") == 0 ? "unknown type (fuzz)" : NULL;
}

void dispatch_notification(const struct group_config *g,
                           const struct record *r) {
  check_dispatch(g, r);
  if (r->kind != RECORD_NOTIFY)
    violated("dispatch_notification of record kind %d", (int)r->kind);
  if (memchr(r->text, '\0', sizeof(r->text)) == NULL)
    violated("notification text not terminated");
}

void stap_log(int level, const char *format, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, format);
  vsnprintf(msg, sizeof(msg), format, ap);
  va_end(ap);
  (void)level;
  if (strncmp(msg, "stap plugin: ", 13) != 0)
    violated("log line without \"stap plugin: \": %s", msg);
  for (const char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
      violated("log line with byte 0x%02x at %zu: %s", (unsigned char)*p,
               (size_t)(p - msg), msg);
}

/* Hands the bytes to the plugin's channel in pieces of `chunk' bytes, as
 * successive read(2)s of staprun's pipe would: every piece but the last
 * goes to what channel_read does with the bytes it read (take), the last
 * one through a real pipe and channel_read, which then sees the end of file
 * and delivers an unterminated last line. (A pipe for every piece would
 * cost two system calls per piece: a tenth of the speed.) */
static void feed_pipe(struct group *g, const uint8_t *p, size_t n, size_t chunk,
                      channel_line_cb cb) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0 ||
      fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) /* as child_spawn's ends */
    violated("pipe: %s", strerror(errno));
  struct channel ch;
  channel_init(&ch, fds[0]);
  size_t off = 0;
  for (; n - off > chunk; off += chunk)
    take(&ch, (const char *)p + off, chunk, cb, g);
  if (n > off) {
    /* At most the channel's read size into an empty pipe: one read(2)
     * takes it whole. */
    if (write(fds[1], p + off, n - off) != (ssize_t)(n - off))
      violated("write to the pipe: %s", strerror(errno));
    if (channel_read(&ch, cb, g) != 0)
      violated("channel_read did not return 0 with data in the pipe");
  }
  close(fds[1]);
  if (channel_read(&ch, cb, g) != 1)
    violated("channel_read did not see the end of file");
  close(fds[0]);
}

static const uint8_t *find(const uint8_t *p, size_t n, const char *word) {
  return memmem(p, n, word, strlen(word));
}

/* One staprun run: its stdout, then its stderr, then what run_once does
 * once staprun has ended and its pipes are drained. */
static void one_run(struct group *g, const uint8_t *p, size_t n, size_t chunk) {
  g->refused = false;
  g->nerrors = 0;
  const uint8_t *err = find(p, n, "@stderr\n");
  size_t out_len = err != NULL ? (size_t)(err - p) : n;
  feed_pipe(g, p, out_len, chunk, on_stdout_line);
  if (err != NULL) {
    size_t skip = out_len + strlen("@stderr\n");
    feed_pipe(g, p + skip, n - skip, chunk, on_stderr_line);
  }
  set_running(g, false);
  if (batch_session_end(&g->batch))
    count(g, &g->stats.discarded, 1);
  report_end(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  size_t ngroups = 0;
  while (config_known_groups[ngroups] != NULL)
    ngroups++;

  struct plugin_config pcfg;
  config_defaults(&pcfg);
  struct group_config gcfg = {.interval_ms = 1000};
  snprintf(gcfg.name, sizeof(gcfg.name), "%s",
           config_known_groups[(data[0] / 16) % ngroups]);
  snprintf(gcfg.module, sizeof(gcfg.module), "/nonexistent/collectd_stap_%s.ko",
           gcfg.name);
  if (data[1] & 0x80) {
    gcfg.max_series = LARGE_MAX_SERIES;
    gcfg.max_batch_records = BATCH_DEFAULT_MAX_RECORDS;
  } else {
    gcfg.max_series = 1 + (data[1] & 0x0f);
    gcfg.max_batch_records = 1 + 3 * ((data[1] >> 4) & 7);
  }
  size_t chunk = chunk_sizes[data[0] % 16];

  static struct group g;
  if (group_init(&g, &pcfg, &gcfg, "fuzz") != 0)
    violated("group_init failed");
  cur = &g;
  gen++;
  seen_count = 0;

  const uint8_t *p = data + 2, *end = data + size;
  for (;;) {
    const uint8_t *next = find(p, (size_t)(end - p), "@restart\n");
    one_run(&g, p, (size_t)((next ? next : end) - p), chunk);
    if (next == NULL)
      break;
    p = next + strlen("@restart\n");
  }
  if (offsets_count(g.offsets) > gcfg.max_series)
    violated("series table holds %zu series, MaxSeries is %zu",
             offsets_count(g.offsets), gcfg.max_series);
  group_destroy(&g);
  cur = NULL;
  return 0;
}
