/* Where complete batches go: collectd's core in the plugin (stap.c), a
 * recorder in the unit tests. */
#ifndef COLLECTD_STAP_DISPATCH_H
#define COLLECTD_STAP_DISPATCH_H

#include "config.h"
#include "record.h"

#include <stdint.h>

/* A derive or gauge record; for a derive, `derive` holds its r->nvalues
 * offset-corrected counters. Returns NULL, or why the value was refused
 * (e.g. an unknown type). */
const char *dispatch_value(const struct group_config *g, const struct record *r,
                           const int64_t *derive);
void dispatch_notification(const struct group_config *g,
                           const struct record *r);

#endif
