/* A write plugin that writes nothing, for the collectd benchmark: without
 * any write plugin collectd 5.12 logs "Available write targets: [none]" for
 * every value, and that logging, not the readers, would load the machine.
 * With this one every value goes through the write threads, the value cache
 * and the filter chain to a writer, as in production, at no cost of its own.
 * It counts the value lists it is given and, when the environment names a
 * file (NULL_WRITE_COUNT), writes the count there at every read interval:
 * the benchmark waits for every value it fed to have come through, and
 * fails a daemon that dispatched none (a reader measured doing nothing).
 * Test-only: never installed. */
#include "collectd.h"

#include "plugin.h"

#include <stdatomic.h>

static atomic_ullong written;
static const char *count_file;

static int null_write(const data_set_t *ds, const value_list_t *vl,
                      user_data_t *ud) {
  (void)ds;
  (void)vl;
  (void)ud;
  atomic_fetch_add_explicit(&written, 1, memory_order_relaxed);
  return 0;
}

/* The count, replaced whole (a reader never sees half a number). */
static int null_write_count(void) {
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", count_file) >= (int)sizeof(tmp))
    return -1;
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return -1;
  fprintf(f, "%llu\n", (unsigned long long)atomic_load(&written));
  if (fclose(f) != 0 || rename(tmp, count_file) != 0)
    return -1;
  return 0;
}

void module_register(void) {
  plugin_register_write("null_write", null_write, NULL);
  count_file = getenv("NULL_WRITE_COUNT");
  if (count_file != NULL && count_file[0] != '\0')
    plugin_register_read("null_write", null_write_count);
}
