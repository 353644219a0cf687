/* Assembles the lines of one module session into complete batches
 * (modules/PROTOCOL.md, "Batches"). */
#ifndef COLLECTD_STAP_BATCH_H
#define COLLECTD_STAP_BATCH_H

#include "record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BATCH_DEFAULT_MAX_RECORDS 4096

enum batch_event {
  BATCH_NOTHING,   /* line taken, nothing to do yet */
  BATCH_HELLO,     /* a new module session began (first hello of a run) */
  BATCH_INFO,      /* res.record->text is for the log */
  BATCH_COMPLETE,  /* batch.records[0..n) is ready to dispatch */
  BATCH_BAD_LINE,  /* res.why says what was wrong with the line */
  BATCH_DISCARDED, /* an open batch was thrown away; res.why says why */
  BATCH_REFUSED,   /* wrong protocol version or group; res.why says which */
};

struct batch_result {
  enum batch_event event;
  const char *why;
  /* BATCH_COMPLETE: batches missing between the previous one and this. */
  uint64_t gaps;
  /* BATCH_INFO: the info record. BATCH_DISCARDED for a series named twice:
   * the record naming it the second time (in batch.records). */
  const struct record *record;
  /* BATCH_REFUSED: what the module said. */
  unsigned long version;
  char group[RECORD_NAME_SIZE];
};

struct batch {
  char group[RECORD_NAME_SIZE];
  size_t max_records;

  struct record *records;
  size_t n;
  size_t cap;

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

  struct record scratch;

  /* Hash set of the batch's series (index + 1 into records, 0 empty), for
   * the duplicate check at end: O(n) per batch. MaxBatchRecords is at most
   * 1000000, so an index fits 32 bits. */
  uint32_t *series_slots;
  size_t series_cap;
};

int batch_init(struct batch *b, const char *group, size_t max_records);
void batch_free(struct batch *b);

/* Feeds one line (without newline). A BATCH_COMPLETE result stays valid
 * until the next call. */
void batch_feed(struct batch *b, const char *line, size_t len,
                struct batch_result *res);

/* The module's output ended (the staprun run is over): the next run starts
 * with a hello again. Returns true if an open batch was discarded. */
bool batch_session_end(struct batch *b);

#endif
