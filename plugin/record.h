/* One line of the record protocol (modules/PROTOCOL.md), parsed. */
#ifndef COLLECTD_STAP_RECORD_H
#define COLLECTD_STAP_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define RECORD_PROTOCOL_VERSION 1
/* Longest line accepted, without its newline. */
#define RECORD_LINE_MAX 1023
/* Longest name (group, plugin instance, type, type instance) plus NUL. */
#define RECORD_NAME_SIZE 64
/* Values in one derive or gauge record: one per data source of the type
 * (if_octets has two, rx and tx). */
#define RECORD_MAX_VALUES 8
/* collectd keeps 255 bytes of a notification message. */
#define RECORD_TEXT_SIZE 256

enum record_kind {
  RECORD_HELLO,
  RECORD_INFO,
  RECORD_BEGIN,
  RECORD_DERIVE,
  RECORD_GAUGE,
  RECORD_NOTIFY,
  RECORD_END,
};

enum record_severity {
  RECORD_FAILURE,
  RECORD_WARNING,
  RECORD_OKAY,
};

struct record {
  enum record_kind kind;
  unsigned long version;        /* hello */
  char group[RECORD_NAME_SIZE]; /* hello */
  uint64_t seq;                 /* begin, end */
  uint64_t count;               /* end */
  char plugin_instance[RECORD_NAME_SIZE];
  char type[RECORD_NAME_SIZE];
  char type_instance[RECORD_NAME_SIZE]; /* "" when the module wrote "-" */
  size_t nvalues; /* derive, gauge: 1 to RECORD_MAX_VALUES */
  int64_t derive[RECORD_MAX_VALUES];
  double gauge[RECORD_MAX_VALUES];
  enum record_severity severity;
  char text[RECORD_TEXT_SIZE]; /* info, notify */
  /* For dispatch: when the batch was complete, the time of all its values
   * (a batch is one moment of the module's counters); 0: when dispatched. */
  struct timespec time;
};

/* A line parsed where it lies: names and text point into the line, nothing
 * is copied. What the batch assembler keeps of a record is much smaller
 * than a struct record (a series id and its values), so it takes it from
 * here rather than from a full copy. */
struct record_view {
  enum record_kind kind;
  unsigned long version; /* hello */
  uint64_t seq;          /* begin, end */
  uint64_t count;        /* end */
  /* derive, gauge, notify: plugin instance, type, type instance (length 0
   * when the module wrote "-"); hello: name[0] is the group. Checked
   * against the name rules, not NUL-terminated. */
  const char *name[3];
  size_t len[3];
  size_t nvalues; /* derive, gauge: 1 to RECORD_MAX_VALUES */
  int64_t derive[RECORD_MAX_VALUES];
  double gauge[RECORD_MAX_VALUES];
  enum record_severity severity;
  const char *text; /* info, notify: as the line has it (record_text) */
  size_t text_len;
};

/* Parses one line (without its newline; len bytes, need not be
 * NUL-terminated). Returns 0 and fills *v (only the fields of its kind), or
 * -1 and points *why at a static explanation. Never reads past len. */
int record_scan(const char *line, size_t len, struct record_view *v,
                const char **why);

/* record_scan, then a copy of what it found into *r (zeroed first). */
int record_parse(const char *line, size_t len, struct record *r,
                 const char **why);

/* Copies the free text of an info or notify line for keeping: control
 * characters replaced so a log line stays one line, cut to what collectd
 * keeps (dst has RECORD_TEXT_SIZE bytes). */
void record_text(const char *s, size_t len, char *dst);

/* Whether a record of this kind belongs inside a batch. */
int record_in_batch(enum record_kind kind);

/* Copies len bytes of untrusted text (a module's line, staprun's stderr) for
 * a log line: printable ASCII as is, a backslash as \\, every other byte as
 * \xNN, so a terminal escape or a stray NUL cannot reach the log. Stops
 * before an escape that would not fit; dst (size >= 1) is NUL-terminated.
 * Returns the length written. */
size_t record_escape(const char *s, size_t len, char *dst, size_t size);

#endif
