/* Benchmark of the plugin's per-line work: channel splitting, parsing, batch
 * assembly and counter offsets, the path every module line takes. Targets
 * (checked, non-zero exit when missed):
 *   - at least 1,000,000 records/s on one core (a module printing 4096
 *     records per 1 s interval uses well under 1% of a core);
 *   - memory stays bounded when a hostile module invents series (400,000
 *     new names) and prints overlong lines: the series table stops at
 *     MaxSeries (4096) and max RSS grows by less than 16 MiB. */
#include "../../plugin/batch.h"
#include "../../plugin/channel.h"
#include "../../plugin/offset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct sink {
  struct batch batch;
  struct offsets *offsets;
  unsigned long long records, batches, bad;
  long long checksum;
};

static void on_line(void *ctx, const char *line, size_t len, bool truncated) {
  struct sink *s = ctx;
  struct batch_result res;
  if (truncated) {
    s->bad++;
    return;
  }
  batch_feed(&s->batch, line, len, &res);
  if (res.event == BATCH_HELLO)
    offsets_new_session(s->offsets);
  else if (res.event == BATCH_BAD_LINE)
    s->bad++;
  else if (res.event == BATCH_COMPLETE) {
    char key[200];
    s->batches++;
    for (size_t i = 0; i < s->batch.n; i++) {
      const struct record *r = &s->batch.records[i];
      int64_t v;
      snprintf(key, sizeof(key), "%s/%s/%s", r->plugin_instance, r->type,
               r->type_instance);
      if (offsets_apply(s->offsets, key, r->derive[0], &v) == 0)
        s->checksum += v;
      s->records++;
    }
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long max_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* Writes `text` through a pipe to the channel, as staprun's stdout would. */
static void pump(struct sink *s, const char *text, size_t len) {
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
  while (channel_read(&c, on_line, s) == 0)
    ;
  close(fds[0]);
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

int main(void) {
  int failed = 0;
  struct sink s;
  memset(&s, 0, sizeof(s));
  batch_init(&s.batch, "tcp", 4096);
  s.offsets = offsets_new(4096);

  /* Memory under a hostile module: endless new series (capped by MaxSeries)
   * and overlong lines. */
  long rss0 = max_rss_kib();
  size_t chunk = 1 << 20;
  char *junk = malloc(chunk + 4096);
  unsigned long long lines = 0;
  pump(&s, "hello 1 tcp\n", 12);
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
    pump(&s, junk, used);
  }
  long rss1 = max_rss_kib();
  printf(
      "memory: %llu hostile lines (400000 new series, overlong lines), series "
      "kept %zu (cap 4096), max RSS "
      "%ld KiB -> %ld KiB, growth %ld KiB (target < 16384)\n",
      lines, offsets_count(s.offsets), rss0, rss1, rss1 - rss0);
  if (rss1 - rss0 >= 16384 || offsets_count(s.offsets) != 4096)
    failed = 1;
  free(junk);
  /* Throughput: 2,000 batches of 1,000 records. */
  size_t len;
  char *text = session(2000, 1000, &len);
  unsigned long long mem_records = s.records;
  s.batch.in_session = false;
  offsets_free(s.offsets);
  s.offsets = offsets_new(4096);
  s.checksum = 0;
  double t0 = now();
  pump(&s, text, len);
  double dt = now() - t0;
  double rate = (double)(s.records - mem_records) / dt;
  printf("throughput: %llu records in %llu batches, %.3f s, %.0f records/s "
         "(target >= 1000000)\n",
         s.records - mem_records, s.batches, dt, rate);
  if (s.records - mem_records != 2000000ULL) {
    printf("FAIL: expected 2000000 records, got %llu (bad lines %llu)\n",
           s.records - mem_records, s.bad);
    failed = 1;
  }
  if (rate < 1e6)
    failed = 1;
  free(text);

  batch_free(&s.batch);
  offsets_free(s.offsets);
  printf("%s (checksum %lld)\n", failed ? "bench: FAILED" : "bench: ok",
         s.checksum);
  return failed;
}
