/* The source of values for the collectd benchmark (tests/bench/collectd.sh):
 * one group's series, printed once per interval, either as a module would
 * (record protocol, to the stap plugin: this program stands in for staprun)
 * or as PUTVAL lines (to the exec plugin). Both print the same series with
 * the same values, so the two collectd daemons do the same work behind
 * their readers.
 *
 *   bench_feed [-b MIB] MODULE interval_ms=N
 *                                        as staprun (the plugin passes its
 *                                        BufferSize as -b); MODULE's first
 *                                        line is "SERIES BATCHES CTLDIR"
 *   bench_feed -d NAME                   as `staprun -d': nothing to do
 *   bench_feed --putval GROUP SERIES BATCHES CTLDIR INTERVAL_MS
 *
 * It prints a first batch at once (the reader meets every series for the
 * first time: not what the benchmark measures), waits for CTLDIR/go, prints
 * BATCHES more batches of SERIES values, one per interval, appends the
 * group's name to CTLDIR/done, then waits for SIGTERM (collectd stops it).
 * Batches are written whole, in large writes: the benchmark measures
 * collectd's reader, not this program. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct feed {
  const char *group;
  unsigned long series, batches, interval_ms;
  const char *ctl;
  int putval;
};

static volatile sig_atomic_t stopping;

static void on_term(int sig) {
  (void)sig;
  stopping = 1;
}

static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      exit(0); /* the reader is gone */
    p += w;
    n -= (size_t)w;
  }
}

static void sleep_ms(unsigned long ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One interval's batch in buf; returns its length. */
static size_t format_batch(const struct feed *f, unsigned long b, char *buf) {
  size_t n = 0;
  if (!f->putval)
    n += (size_t)sprintf(buf + n, "begin %lu\n", b);
  for (unsigned long i = 0; i < f->series; i++) {
    unsigned long long v = (unsigned long long)b * (i % 97 + 1);
    if (f->putval)
      n += (size_t)sprintf(buf + n,
                           "PUTVAL \"bench/stap-%s/protocol_counter-series-%lu"
                           "\" N:%llu\n",
                           f->group, i, v);
    else
      n += (size_t)sprintf(buf + n,
                           "derive %s protocol_counter series-%lu %llu\n",
                           f->group, i, v);
  }
  if (!f->putval)
    n += (size_t)sprintf(buf + n, "end %lu %lu\n", b, f->series);
  return n;
}

static void run(const struct feed *f) {
  char path[4096];
  char *buf = malloc(f->series * 128 + 128);
  if (buf == NULL)
    exit(1);
  if (!f->putval) {
    int n = snprintf(buf, 128, "hello 1 %s\n", f->group);
    write_all(buf, (size_t)n);
  }
  write_all(buf, format_batch(f, 1, buf));
  snprintf(path, sizeof(path), "%s/go", f->ctl);
  while (!stopping && access(path, F_OK) != 0)
    sleep_ms(20);
  double start = now_s();
  for (unsigned long b = 2; b <= f->batches + 1 && !stopping; b++) {
    double due = start + (double)(b - 2) * (double)f->interval_ms / 1000.0;
    double left = due - now_s();
    if (left > 0)
      sleep_ms((unsigned long)(left * 1000.0));
    write_all(buf, format_batch(f, b, buf));
  }
  snprintf(path, sizeof(path), "%s/done", f->ctl);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0666);
  if (fd >= 0) {
    int n = snprintf(buf, 128, "%s\n", f->group);
    if (write(fd, buf, (size_t)n) != n)
      exit(1);
    close(fd);
  }
  while (!stopping)
    pause();
  free(buf);
}

/* As staprun: the group is NAME of collectd_stap_NAME.ko, the rest is in
 * the module file (staprun's parameters are checked by the plugin against a
 * list, so the benchmark's own settings do not go there). The options the
 * plugin passes before the module (-b MIB) are taken and ignored; any other
 * is refused, so that a command line the feeder does not know shows as a
 * usage error in the daemon's log and a benchmark without values. */
static int as_staprun(int argc, char **argv, struct feed *f) {
  static char group[64], ctl[4096];
  int i = 1;
  while (i < argc && argv[i][0] == '-') {
    if (strcmp(argv[i], "-b") != 0 || i + 1 >= argc)
      return -1;
    i += 2;
  }
  if (i >= argc)
    return -1;
  const char *module = argv[i];
  const char *base = strrchr(module, '/');
  base = base ? base + 1 : module;
  if (sscanf(base, "collectd_stap_%63[a-z].ko", group) != 1)
    return -1;
  FILE *m = fopen(module, "r");
  if (m == NULL)
    return -1;
  int got = fscanf(m, "%lu %lu %4095s", &f->series, &f->batches, ctl);
  fclose(m);
  if (got != 3)
    return -1;
  f->group = group;
  f->ctl = ctl;
  for (i++; i < argc; i++)
    if (strncmp(argv[i], "interval_ms=", 12) == 0)
      f->interval_ms = strtoul(argv[i] + 12, NULL, 10);
  return f->interval_ms > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  struct feed f = {0};
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  if (argc == 3 && strcmp(argv[1], "-d") == 0)
    return 0;
  if (argc == 7 && strcmp(argv[1], "--putval") == 0) {
    f.putval = 1;
    f.group = argv[2];
    f.series = strtoul(argv[3], NULL, 10);
    f.batches = strtoul(argv[4], NULL, 10);
    f.ctl = argv[5];
    f.interval_ms = strtoul(argv[6], NULL, 10);
  } else if (argc < 2 || as_staprun(argc, argv, &f) != 0) {
    fprintf(stderr, "usage: bench_feed [-b MIB] MODULE interval_ms=N | "
                    "-d NAME | "
                    "--putval GROUP SERIES BATCHES CTLDIR INTERVAL_MS\n");
    return 2;
  }
  run(&f);
  return 0;
}
