/* A group's series table: every series the group dispatches (counters,
 * gauges, notifications), bounded by MaxSeries, and for counters the
 * per-data-source offsets that keep DERIVE values monotonic across module
 * restarts, and within a session when a module's counter goes back
 * (modules/PROTOCOL.md, "Counters across module restarts"). A series is
 * known by its name (plugin instance, type, type instance) and, once in the
 * table, by a small id: the batch assembler looks each record's series up
 * once, as it parses the line, and the dispatch needs no name lookup. */
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

/* A series' name as a line gives it: plugin instance, type and type
 * instance (may be empty), not NUL-terminated, none containing '/'. */
struct series_name {
  const char *part[3];
  size_t len[3];
};

/* max_series bounds memory: a module that invents names cannot grow the
 * table (nor collectd's caches and files behind it) without limit. */
struct offsets *offsets_new(size_t max_series);
void offsets_free(struct offsets *o);

/* A new module session began: every counter restarts from zero. */
void offsets_new_session(struct offsets *o);

/* The hash offsets_find and offsets_claim_name take (computed once per
 * record by the caller). */
uint64_t offsets_hash(const struct series_name *n);

/* The id of series n (0 <= id < MaxSeries), or -1 if it is not in the
 * table. Ids never change: series are never removed. */
long offsets_find(const struct offsets *o, const struct series_name *n,
                  uint64_t hash);

/* Whether series id is named n: a cheaper check than offsets_find when the
 * caller has a good guess. */
bool offsets_named(const struct offsets *o, long id,
                   const struct series_name *n);

/* Takes series n into the table. Returns its id, or -1 when the table is
 * full (or out of memory) and n is new: the record is not to be
 * dispatched. */
long offsets_claim_name(struct offsets *o, const struct series_name *n,
                        uint64_t hash);

/* Copies the name parts of series id, NUL-terminated, to dst[0..2], each
 * of size bytes (cut to fit). */
void offsets_name(const struct offsets *o, long id, char *const dst[3],
                  size_t size);

/* Maps a raw cumulative value of data source `ds' of counter series id to
 * the value to dispatch: the offset of earlier sessions plus the highest
 * raw value of this session, so a value that goes back is held, never a
 * negative rate or a spike. Returns 0, or -1 (step untouched) when out of
 * memory or ds >= OFFSETS_MAX_DS. */
int offsets_update_id(struct offsets *o, long id, size_t ds, int64_t raw,
                      struct offsets_step *step);

/* The same by key, "PINST/TYPE/TINST" (a key with fewer '/' is a plugin
 * instance alone), for callers that have one (tests, the benchmark):
 * offsets_claim returns 0 or -1; offsets_update claims the series first;
 * offsets_apply is offsets_update of data source 0, giving only the
 * value. */
int offsets_claim(struct offsets *o, const char *key);
int offsets_update(struct offsets *o, const char *key, size_t ds, int64_t raw,
                   struct offsets_step *step);
int offsets_apply(struct offsets *o, const char *key, int64_t raw,
                  int64_t *out);

/* Series in the table, whatever their kind; and MaxSeries. */
size_t offsets_count(const struct offsets *o);
size_t offsets_capacity(const struct offsets *o);

#endif
