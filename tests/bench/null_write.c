/* A write plugin that writes nothing, for the collectd benchmark: without
 * any write plugin collectd 5.12 logs "Available write targets: [none]" for
 * every value, and that logging, not the readers, would load the machine.
 * With this one every value goes through the write threads, the value cache
 * and the filter chain to a writer, as in production, at no cost of its own.
 * Test-only: never installed. */
#include "collectd.h"

#include "plugin.h"

static int null_write(const data_set_t *ds, const value_list_t *vl,
                      user_data_t *ud) {
  (void)ds;
  (void)vl;
  (void)ud;
  return 0;
}

void module_register(void) {
  plugin_register_write("null_write", null_write, NULL);
}
