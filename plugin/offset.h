/* Per-series counter offsets that keep DERIVE values monotonic across module
 * restarts (modules/PROTOCOL.md, "Counters across module restarts"). */
#ifndef COLLECTD_STAP_OFFSET_H
#define COLLECTD_STAP_OFFSET_H

#include <stddef.h>
#include <stdint.h>

struct offsets;

/* max_series bounds memory: a module that invents names cannot grow the
 * table without limit. */
struct offsets *offsets_new(size_t max_series);
void offsets_free(struct offsets *o);

/* A new module session began: every counter restarts from zero. */
void offsets_new_session(struct offsets *o);

/* Maps a raw cumulative value of series `key` to the value to dispatch.
 * Returns 0, or -1 when the table is full and `key` is new. */
int offsets_apply(struct offsets *o, const char *key, int64_t raw,
                  int64_t *out);

size_t offsets_count(const struct offsets *o);

#endif
