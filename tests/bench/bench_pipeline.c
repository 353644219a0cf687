/* Benchmark of the plugin's per-line work: the group thread's own path,
 * channel splitting, parsing, batch assembly, the series table and counter
 * offsets up to the call into collectd (dispatch_value, stood in for here
 * as in tests/fuzz/fuzz_read_path.c: this file includes plugin/group.c and
 * plugin/channel.c to reach the line callback). collectd's own cost is
 * measured by tests/bench/collectd.sh. Targets (checked, non-zero exit when
 * missed):
 *   - at least 1,000,000 records/s on one core (a module printing 4096
 *     records per 1 s interval uses well under 1% of a core);
 *   - memory stays bounded when a hostile module invents series (400,000
 *     new names) and prints overlong lines: the series table stops at
 *     MaxSeries (4096) and max RSS grows by less than 16 MiB. */
#include "../../plugin/channel.c"
#include "../../plugin/group.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned long long dispatched;
static long long checksum;

const char *dispatch_value(const struct group_config *g, const struct record *r,
                           const int64_t *derive) {
  (void)g;
  dispatched++;
  checksum += r->kind == RECORD_DERIVE ? derive[0] : 0;
  return NULL;
}

void dispatch_notification(const struct group_config *g,
                           const struct record *r) {
  (void)g;
  (void)r;
  dispatched++;
}

void stap_log(int level, const char *format, ...) {
  (void)level;
  (void)format;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long max_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* Writes `text` through a pipe to the group's stdout channel, as staprun's
 * stdout would. */
static void pump(struct group *g, const char *text, size_t len) {
  int fds[2];
  if (pipe(fds) != 0)
    exit(2);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    size_t off = 0;
    while (off < len) {
      ssize_t n = write(fds[1], text + off, len - off);
      if (n <= 0)
        _exit(1);
      off += (size_t)n;
    }
    _exit(0);
  }
  close(fds[1]);
  struct channel c;
  channel_init(&c, fds[0]);
  while (channel_read(&c, on_stdout_line, g) == 0)
    ;
  close(fds[0]);
  waitpid(pid, NULL, 0);
}

static char *session(size_t batches, size_t per_batch, size_t *len) {
  size_t cap = batches * (per_batch + 2) * 64 + 64, used = 0;
  char *buf = malloc(cap);
  used += (size_t)sprintf(buf, "hello 1 tcp\n");
  for (size_t b = 1; b <= batches; b++) {
    used += (size_t)sprintf(buf + used, "begin %zu\n", b);
    for (size_t i = 0; i < per_batch; i++)
      used += (size_t)sprintf(buf + used,
                              "derive tcp protocol_counter "
                              "retransmits-port-%zu %zu\n",
                              i, b * 3 + i);
    used += (size_t)sprintf(buf + used, "end %zu %zu\n", b, per_batch);
  }
  *len = used;
  return buf;
}

static void new_group(struct group *g) {
  struct plugin_config pcfg;
  config_defaults(&pcfg);
  struct group_config gcfg = {.name = "tcp",
                              .module = "/nonexistent/collectd_stap_tcp.ko",
                              .interval_ms = 1000,
                              .max_batch_records = 4096,
                              .max_series = 4096};
  if (group_init(g, &pcfg, &gcfg, "bench") != 0)
    exit(2);
}

/* Memory under a hostile module: endless new series (capped by MaxSeries)
 * and overlong lines. */
static int hostile(void) {
  static struct group g;
  new_group(&g);
  long rss0 = max_rss_kib();
  size_t chunk = 1 << 20;
  char *junk = malloc(chunk + 4096);
  unsigned long long lines = 0;
  pump(&g, "hello 1 tcp\n", 12);
  for (int round = 1; round <= 100; round++) {
    size_t used = 0;
    /* A complete batch of 4000 series never seen before... */
    used += (size_t)sprintf(junk + used, "begin %d\n", round);
    for (int i = 0; i < 4000; i++, lines++)
      used += (size_t)sprintf(junk + used,
                              "derive tcp protocol_counter s%llu 1\n", lines);
    used += (size_t)sprintf(junk + used, "end %d 4000\n", round);
    /* ...then overlong lines. */
    while (used < chunk) {
      memset(junk + used, 'x', 3000);
      used += 3000;
      junk[used++] = '\n';
      lines++;
    }
    pump(&g, junk, used);
  }
  long rss1 = max_rss_kib();
  size_t kept = offsets_count(g.offsets);
  printf(
      "memory: %llu hostile lines (400000 new series, overlong lines), series "
      "kept %zu (cap 4096), max RSS %ld KiB -> %ld KiB, growth %ld KiB "
      "(target < 16384)\n",
      lines, kept, rss0, rss1, rss1 - rss0);
  free(junk);
  group_destroy(&g);
  return rss1 - rss0 >= 16384 || kept != 4096;
}

/* Throughput: 2,000 batches of 1,000 records. */
static int throughput(void) {
  static struct group g;
  new_group(&g);
  size_t len;
  char *text = session(2000, 1000, &len);
  dispatched = 0;
  checksum = 0;
  double t0 = now(), c0 = cpu_now();
  pump(&g, text, len);
  double dt = now() - t0, cpu = cpu_now() - c0;
  double rate = (double)dispatched / dt;
  printf("throughput: %llu records in %llu batches, %.3f s, %.0f records/s, "
         "%.0f ns of CPU/record (target >= 1000000 records/s)\n",
         dispatched, (unsigned long long)g.stats.batches, dt, rate,
         cpu * 1e9 / (double)dispatched);
  int failed = rate < 1e6;
  if (dispatched != 2000000ULL) {
    printf("FAIL: expected 2000000 records, got %llu (bad lines %llu)\n",
           dispatched, (unsigned long long)g.stats.bad_lines);
    failed = 1;
  }
  free(text);
  group_destroy(&g);
  return failed;
}

int main(void) {
  int failed = hostile();
  failed |= throughput();
  printf("%s (checksum %lld)\n", failed ? "bench: FAILED" : "bench: ok",
         checksum);
  return failed;
}
