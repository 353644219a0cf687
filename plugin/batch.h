/* Assembles the lines of one module session into complete batches
 * (modules/PROTOCOL.md, "Batches"). */
#ifndef COLLECTD_STAP_BATCH_H
#define COLLECTD_STAP_BATCH_H

#include "offset.h"
#include "record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BATCH_DEFAULT_MAX_RECORDS 4096

enum batch_event {
  BATCH_NOTHING,   /* line taken, nothing to do yet */
  BATCH_HELLO,     /* a new module session began (first hello of a run) */
  BATCH_INFO,      /* res.record->text is for the log */
  BATCH_COMPLETE,  /* batch records 0..batch_count() are ready to dispatch */
  BATCH_BAD_LINE,  /* res.why says what was wrong with the line */
  BATCH_DISCARDED, /* an open batch was thrown away; res.why says why */
  BATCH_REFUSED,   /* wrong protocol version or group; res.why says which */
};

struct batch_result {
  enum batch_event event;
  const char *why;
  /* BATCH_DISCARDED: the batch never ended (a begin came first): its output
   * was lost or cut, not refused. */
  bool cut;
  /* BATCH_COMPLETE: batches missing between the previous one and this. */
  uint64_t gaps;
  /* BATCH_INFO: the info record. BATCH_DISCARDED for a series named twice:
   * the record naming it the second time, record number `index' of the
   * batch. Valid until the next call. */
  const struct record *record;
  size_t index;
  /* BATCH_REFUSED: what the module said. */
  unsigned long version;
  char group[RECORD_NAME_SIZE];
};

/* One record of the open batch, as kept: a few bytes, not a struct record
 * (688 bytes, most of them names and a notification text that a counter
 * does not have). 4096 records of full size per group were 25 MB for nine
 * groups, allocated for the largest batch and kept. */
struct batch_entry {
  /* The series' id in the group's series table, or BATCH_NEW_SERIES: its
   * name is then in the text store, at `name'. */
  uint32_t series;
  uint32_t value; /* its first value in the value store */
  uint32_t name;  /* new series: PINST, TYPE, TINST in the text store */
  uint32_t text;  /* notify: its text in the text store */
  uint8_t kind;   /* enum record_kind */
  uint8_t nvalues;
  uint8_t severity; /* enum record_severity */
};
#define BATCH_NEW_SERIES UINT32_MAX

union batch_value {
  int64_t derive;
  double gauge;
};

struct batch {
  char group[RECORD_NAME_SIZE];
  size_t group_len;
  size_t max_records;
  /* The group's series table, looked in for each record's series (NULL:
   * every series is new). Not changed here. */
  const struct offsets *series;

  struct batch_entry *entries;
  size_t n, cap;
  size_t used; /* entries ever written: those past n are earlier batches' */
  union batch_value *values;
  size_t nvalues, values_cap;
  /* Names of series not in the table and notification texts, each
   * NUL-terminated. */
  char *text;
  size_t text_len, text_cap;

  bool in_session;
  /* A hello was refused this run. With in_session, it says a hello was seen:
   * any further one in the same run is refused (batch_session_end clears). */
  bool hello_refused;
  bool open;
  bool tainted; /* the open batch held a bad line or too many records */
  const char *taint_why;
  uint64_t seq;
  bool have_last;
  uint64_t last_seq;

  /* BATCH_INFO's record, a refused batch's duplicate. */
  struct record scratch;

  /* The duplicate check, linear in the batch's size. A series of the
   * table is named twice when its stamp is already the open batch's
   * (stamps: one per table series, as big as MaxSeries). */
  uint32_t *stamps;
  size_t nstamps;
  uint32_t stamp;
  size_t first_dup; /* 1 + the first record naming a table series twice */
  /* New series: a hash set at end (index + 1 into entries, 0 empty).
   * MaxBatchRecords is at most 1000000, so an index fits 32 bits. */
  uint32_t *series_slots;
  size_t series_cap;
};

int batch_init(struct batch *b, const char *group, size_t max_records);
void batch_free(struct batch *b);

/* Records are looked up in the series table o from now on (group_init). */
void batch_use_series(struct batch *b, const struct offsets *o);

/* Feeds one line (without newline). A BATCH_COMPLETE result stays valid
 * until the next call. */
void batch_feed(struct batch *b, const char *line, size_t len,
                struct batch_result *res);

/* Records in the batch (complete after BATCH_COMPLETE). */
size_t batch_count(const struct batch *b);

/* Record i: its series' id in the table, or -1 if the series is new. */
long batch_series(const struct batch *b, size_t i);

/* Record i, whole, into *r (fields of other kinds are left as they are). */
void batch_record(const struct batch *b, size_t i, struct record *r);

/* The module's output ended (the staprun run is over): the next run starts
 * with a hello again. Returns true if an open batch was discarded. */
bool batch_session_end(struct batch *b);

#endif
