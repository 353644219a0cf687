/* A group's series table: every series the group dispatches (counters,
 * gauges, notifications), bounded by MaxSeries, and for counters the
 * per-data-source offsets that keep DERIVE values monotonic across module
 * restarts, and within a session when a module's counter goes back
 * (modules/PROTOCOL.md, "Counters across module restarts"). */
#ifndef COLLECTD_STAP_OFFSET_H
#define COLLECTD_STAP_OFFSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Data sources per series: as many as a record may carry. */
#define OFFSETS_MAX_DS 8

struct offsets;

/* What one raw value of a series turned into. */
struct offsets_step {
  int64_t value; /* what to dispatch */
  /* The raw value was below the series' previous raw value of this session:
   * the value is held (not folded into the offset) until raw climbs back. */
  bool decreased;
  int64_t previous; /* decreased: that previous raw value */
  int64_t high;     /* the highest raw value of this session so far */
};

/* max_series bounds memory: a module that invents names cannot grow the
 * table (nor collectd's caches and files behind it) without limit. */
struct offsets *offsets_new(size_t max_series);
void offsets_free(struct offsets *o);

/* A new module session began: every counter restarts from zero. */
void offsets_new_session(struct offsets *o);

/* Takes series `key' (a gauge's or a notification's identifier) into the
 * table. Returns 0 if it is there now, or -1 when the table is full (or out
 * of memory) and `key' is new: the record is not to be dispatched. */
int offsets_claim(struct offsets *o, const char *key);

/* Maps a raw cumulative value of data source `ds' of counter series `key'
 * to the value to dispatch: the offset of earlier sessions plus the highest
 * raw value of this session, so a value that goes back is held, never a
 * negative rate or a spike. Returns 0, or -1 (step untouched) when the
 * series cannot be claimed or ds >= OFFSETS_MAX_DS. */
int offsets_update(struct offsets *o, const char *key, size_t ds, int64_t raw,
                   struct offsets_step *step);

/* offsets_update of data source 0, for callers that need only the value
 * (the benchmark). */
int offsets_apply(struct offsets *o, const char *key, int64_t raw,
                  int64_t *out);

/* Series in the table, whatever their kind. */
size_t offsets_count(const struct offsets *o);

#endif
