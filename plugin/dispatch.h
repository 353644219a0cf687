/* Where complete batches go: collectd's core in the plugin (stap.c), a
 * recorder in the unit tests. */
#ifndef COLLECTD_STAP_DISPATCH_H
#define COLLECTD_STAP_DISPATCH_H

#include "config.h"
#include "record.h"

#include <stdint.h>

/* A derive or gauge record; `derive` is the offset-corrected counter.
 * Returns NULL, or why the value was refused (e.g. an unknown type). */
const char *dispatch_value(const struct group_config *g, const struct record *r,
                           int64_t derive);
void dispatch_notification(const struct group_config *g,
                           const struct record *r);

#endif
