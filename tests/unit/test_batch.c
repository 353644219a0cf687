/* batch_feed and batch_session_end: the batches of a module session, one
 * hello per staprun run, no series twice in a batch (modules/PROTOCOL.md,
 * "Records" and "Batches"). */
#include "helpers.h"

#include "plugin/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *event_name(enum batch_event e) {
  static const char *const names[] = {
      [BATCH_NOTHING] = "NOTHING",   [BATCH_HELLO] = "HELLO",
      [BATCH_INFO] = "INFO",         [BATCH_COMPLETE] = "COMPLETE",
      [BATCH_BAD_LINE] = "BAD_LINE", [BATCH_DISCARDED] = "DISCARDED",
      [BATCH_REFUSED] = "REFUSED",
  };
  return (unsigned)e < ARRAY_SIZE(names) ? names[e] : "?";
}

/* Feeds one line and checks the event; on a mismatch says which line. */
#define FEED(b, line, event) feed_expect(b, line, event, __FILE__, __LINE__)

static struct batch_result feed_expect(struct batch *b, const char *line,
                                       enum batch_event want, const char *file,
                                       int at) {
  struct batch_result res;
  batch_feed(b, line, strlen(line), &res);
  if (res.event != want) {
    print_error("line \"%s\" gave %s (why: %s), expected %s\n", line,
                event_name(res.event), res.why ? res.why : "-",
                event_name(want));
    _fail(file, at);
  }
  return res;
}

#define assert_why(res, needle) assert_why_at(res, needle, __FILE__, __LINE__)

static void assert_why_at(struct batch_result res, const char *needle,
                          const char *file, int at) {
  if (res.why == NULL || strstr(res.why, needle) == NULL) {
    print_error("why is \"%s\", expected it to contain \"%s\"\n",
                res.why ? res.why : "(null)", needle);
    _fail(file, at);
  }
}

static int setup(void **state) {
  struct batch *b = malloc(sizeof(*b));
  if (b == NULL || batch_init(b, "tcp", 0) != 0)
    return -1;
  *state = b;
  return 0;
}

static int teardown(void **state) {
  batch_free(*state);
  free(*state);
  return 0;
}

static void hello(struct batch *b) {
  struct batch_result res = FEED(b, "hello 1 tcp", BATCH_HELLO);
  assert_null(res.why);
}

/* One batch with SEQ and a single derive record of that value. */
static struct batch_result one_batch(struct batch *b, unsigned seq,
                                     unsigned value) {
  char line[128];
  snprintf(line, sizeof(line), "begin %u", seq);
  FEED(b, line, BATCH_NOTHING);
  snprintf(line, sizeof(line), "derive tcp protocol_counter x %u", value);
  FEED(b, line, BATCH_NOTHING);
  snprintf(line, sizeof(line), "end %u 1", seq);
  struct batch_result res;
  batch_feed(b, line, strlen(line), &res);
  return res;
}

static void test_complete_batch(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter retransmits 3", BATCH_NOTHING);
  FEED(b, "gauge tcp-5001 gauge - 1.5", BATCH_NOTHING);
  FEED(b, "notify warning tcp protocol_counter retransmits storm ahead",
       BATCH_NOTHING);
  struct batch_result res = FEED(b, "end 1 3", BATCH_COMPLETE);
  assert_null(res.why);
  assert_int_equal(res.gaps, 0);

  assert_int_equal(batch_count(b), 3);
  struct record r[3];
  memset(r, 0, sizeof(r));
  for (size_t i = 0; i < 3; i++)
    batch_record(b, i, &r[i]);
  assert_int_equal(r[0].kind, RECORD_DERIVE);
  assert_string_equal(r[0].plugin_instance, "tcp");
  assert_string_equal(r[0].type, "protocol_counter");
  assert_string_equal(r[0].type_instance, "retransmits");
  assert_int_equal(r[0].derive[0], 3);
  assert_int_equal(r[1].kind, RECORD_GAUGE);
  assert_string_equal(r[1].plugin_instance, "tcp-5001");
  assert_string_equal(r[1].type_instance, "");
  assert_true(r[1].gauge[0] == 1.5);
  assert_int_equal(r[2].kind, RECORD_NOTIFY);
  assert_int_equal(r[2].severity, RECORD_WARNING);
  assert_string_equal(r[2].text, "storm ahead");
}

static void test_empty_batch_is_complete(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "end 1 0", BATCH_COMPLETE);
  assert_int_equal(batch_count(b), 0);
}

static void test_count_mismatch_discards(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter y 1", BATCH_NOTHING);
  assert_why(FEED(b, "end 1 3", BATCH_DISCARDED), "COUNT");

  FEED(b, "begin 2", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter y 1", BATCH_NOTHING);
  assert_why(FEED(b, "end 2 1", BATCH_DISCARDED), "COUNT");

  /* The next batch is not affected. */
  assert_int_equal(one_batch(b, 3, 1).event, BATCH_COMPLETE);
}

static void test_seq_mismatch_discards(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  assert_why(FEED(b, "end 2 1", BATCH_DISCARDED), "SEQ");
  /* The batch is closed: its real end is now an end without begin. */
  assert_why(FEED(b, "end 1 1", BATCH_BAD_LINE), "end without begin");
}

static void test_begin_inside_open_batch(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  assert_why(FEED(b, "begin 2", BATCH_DISCARDED), "begin");
  FEED(b, "derive tcp protocol_counter x 2", BATCH_NOTHING);
  struct batch_result res = FEED(b, "end 2 1", BATCH_COMPLETE);
  /* Only what followed the second begin. */
  assert_int_equal(batch_count(b), 1);
  struct record r;
  batch_record(b, 0, &r);
  assert_int_equal(r.derive[0], 2);
  /* Batch 1 never completed: it is missing. */
  assert_int_equal(res.gaps, 1);
}

static void test_records_outside_batch(void **state) {
  struct batch *b = *state;
  hello(b);
  assert_why(FEED(b, "derive tcp protocol_counter x 1", BATCH_BAD_LINE),
             "outside a batch");
  assert_why(FEED(b, "gauge tcp gauge x 1", BATCH_BAD_LINE), "outside a batch");
  assert_why(FEED(b, "notify okay tcp t x m", BATCH_BAD_LINE),
             "outside a batch");
  assert_why(FEED(b, "end 1 0", BATCH_BAD_LINE), "end without begin");
  assert_int_equal(one_batch(b, 1, 5).event, BATCH_COMPLETE);
}

static void test_records_before_hello(void **state) {
  struct batch *b = *state;
  const char *lines[] = {"begin 1", "derive tcp protocol_counter x 1",
                         "end 1 1", "info hi", "notify okay tcp t x m"};
  for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
    assert_why(FEED(b, lines[i], BATCH_BAD_LINE), "before a valid hello");
  /* A malformed line says what is wrong with it instead. */
  assert_why(FEED(b, "garbage", BATCH_BAD_LINE), "unknown record");

  hello(b);
  struct batch_result res = one_batch(b, 1, 1);
  assert_int_equal(res.event, BATCH_COMPLETE);
  assert_int_equal(res.gaps, 0);
}

static void test_wrong_protocol_version_refused(void **state) {
  struct batch *b = *state;
  struct batch_result res = FEED(b, "hello 2 tcp", BATCH_REFUSED);
  assert_why(res, "version");
  assert_int_equal(res.version, 2);
  assert_string_equal(res.group, "tcp");
  /* No session: its batches are not taken. */
  assert_why(FEED(b, "begin 1", BATCH_BAD_LINE), "before a valid hello");
  /* Nor does a good hello later in the same run start one... */
  assert_why(FEED(b, "hello 1 tcp", BATCH_BAD_LINE), "second hello");
  assert_why(FEED(b, "begin 1", BATCH_BAD_LINE), "before a valid hello");
  /* ...but the next run's does. */
  assert_false(batch_session_end(b));
  hello(b);
  assert_int_equal(one_batch(b, 1, 1).event, BATCH_COMPLETE);
}

static void test_wrong_group_refused(void **state) {
  struct batch *b = *state;
  struct batch_result res = FEED(b, "hello 1 udp", BATCH_REFUSED);
  assert_why(res, "another group");
  assert_int_equal(res.version, 1);
  assert_string_equal(res.group, "udp");
  assert_why(FEED(b, "begin 1", BATCH_BAD_LINE), "before a valid hello");
}

/* A wrong hello after a good one is a second hello: refused as a bad line,
 * the session and its batch numbering go on. */
static void test_second_wrong_hello_is_a_bad_line(void **state) {
  struct batch *b = *state;
  hello(b);
  assert_int_equal(one_batch(b, 1, 1).event, BATCH_COMPLETE);
  assert_why(FEED(b, "hello 2 tcp", BATCH_BAD_LINE), "second hello");
  assert_why(FEED(b, "hello 1 udp", BATCH_BAD_LINE), "second hello");
  struct batch_result res = one_batch(b, 2, 1);
  assert_int_equal(res.event, BATCH_COMPLETE);
  assert_int_equal(res.gaps, 0);
}

static void test_plugin_instance_must_be_the_group(void **state) {
  struct batch *b = *state;
  hello(b);
  const char *ok[] = {"tcp", "tcp-5001", "tcp-a-b"};
  FEED(b, "begin 1", BATCH_NOTHING);
  for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
    char line[128];
    snprintf(line, sizeof(line), "derive %s protocol_counter x 1", ok[i]);
    FEED(b, line, BATCH_NOTHING);
  }
  FEED(b, "end 1 3", BATCH_COMPLETE);

  const char *bad[] = {"udp", "tcpx", "tc", "xtcp", "TCP", "-tcp", "tcp_1"};
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    char line[128];
    unsigned seq = (unsigned)i + 2;
    snprintf(line, sizeof(line), "begin %u", seq);
    FEED(b, line, BATCH_NOTHING);
    FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
    snprintf(line, sizeof(line), "gauge %s gauge x 1", bad[i]);
    assert_why(FEED(b, line, BATCH_BAD_LINE), "plugin instance");
    snprintf(line, sizeof(line), "end %u 1", seq);
    assert_why(FEED(b, line, BATCH_DISCARDED), "bad line");
  }
}

/* stap_running and stap_events are the plugin's own health series: a
 * module record of those types is a bad line (the batch is discarded), of
 * any kind; stap_module, the module's own health, is allowed. */
static void test_health_types_are_the_plugins(void **state) {
  struct batch *b = *state;
  hello(b);
  const char *bad[] = {
      "derive tcp stap_events batches 1",
      "gauge tcp stap_running - 1",
      "notify okay tcp stap_running - module says it runs",
      "derive tcp-x stap_events restarts 0",
  };
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    char line[128];
    unsigned seq = (unsigned)i + 1;
    snprintf(line, sizeof(line), "begin %u", seq);
    FEED(b, line, BATCH_NOTHING);
    FEED(b, "derive tcp stap_module probes_skipped 0", BATCH_NOTHING);
    struct batch_result res = FEED(b, bad[i], BATCH_BAD_LINE);
    assert_why(res, "is the plugin's own health series");
    assert_why(res, "stap_module");
    snprintf(line, sizeof(line), "end %u 2", seq);
    assert_why(FEED(b, line, BATCH_DISCARDED), "bad line");
  }
  FEED(b, "begin 9", BATCH_NOTHING);
  FEED(b, "derive tcp stap_module probes_skipped 3", BATCH_NOTHING);
  FEED(b, "gauge tcp stap_running_time - 1", BATCH_NOTHING);
  FEED(b, "end 9 2", BATCH_COMPLETE);
}

static void test_too_many_records(void **state) {
  (void)state;
  struct batch b;
  assert_int_equal(batch_init(&b, "tcp", 3), 0);
  hello(&b);
  const char *lines[] = {
      "derive tcp protocol_counter a 1", "derive tcp protocol_counter b 1",
      "derive tcp protocol_counter c 1", "derive tcp protocol_counter d 1"};
  FEED(&b, "begin 1", BATCH_NOTHING);
  for (int i = 0; i < 3; i++)
    FEED(&b, lines[i], BATCH_NOTHING);
  FEED(&b, "end 1 3", BATCH_COMPLETE);

  FEED(&b, "begin 2", BATCH_NOTHING);
  for (int i = 0; i < 4; i++)
    FEED(&b, lines[i], BATCH_NOTHING);
  assert_why(FEED(&b, "end 2 4", BATCH_DISCARDED), "MaxBatchRecords");

  /* The limit applies per batch. */
  FEED(&b, "begin 3", BATCH_NOTHING);
  FEED(&b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  FEED(&b, "end 3 1", BATCH_COMPLETE);
  batch_free(&b);
}

/* MaxBatchRecords 0 means the default, 4096; the record array grows to it. */
static void test_default_max_records(void **state) {
  struct batch *b = *state;
  assert_int_equal(b->max_records, BATCH_DEFAULT_MAX_RECORDS);
  hello(b);
  char line[64];
  for (unsigned seq = 1; seq <= 2; seq++) {
    unsigned n = BATCH_DEFAULT_MAX_RECORDS + seq - 1;
    snprintf(line, sizeof(line), "begin %u", seq);
    FEED(b, line, BATCH_NOTHING);
    for (unsigned i = 0; i < n; i++) {
      snprintf(line, sizeof(line), "derive tcp protocol_counter x-%u %u", i, i);
      FEED(b, line, BATCH_NOTHING);
    }
    snprintf(line, sizeof(line), "end %u %u", seq, n);
    if (seq == 1) {
      FEED(b, line, BATCH_COMPLETE);
      assert_int_equal(batch_count(b), BATCH_DEFAULT_MAX_RECORDS);
      struct record r;
      batch_record(b, 4095, &r);
      assert_int_equal(r.derive[0], 4095);
    } else {
      assert_why(FEED(b, line, BATCH_DISCARDED), "MaxBatchRecords");
    }
  }
}

static void test_gaps(void **state) {
  struct batch *b = *state;
  hello(b);
  const struct {
    unsigned seq;
    uint64_t gaps;
  } steps[] = {{1, 0}, {2, 0}, {5, 2}, {6, 0}, {4, 0}, {5, 0}, {9, 3}};
  for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
    struct batch_result res = one_batch(b, steps[i].seq, 1);
    assert_int_equal(res.event, BATCH_COMPLETE);
    if (res.gaps != steps[i].gaps)
      fail_msg("batch %u: gaps %llu, expected %llu", steps[i].seq,
               (unsigned long long)res.gaps, (unsigned long long)steps[i].gaps);
  }
  /* A new session (the next staprun run) counts from 1 again. */
  batch_session_end(b);
  hello(b);
  assert_int_equal(one_batch(b, 1, 1).gaps, 0);
  batch_session_end(b);
  hello(b);
  assert_int_equal(one_batch(b, 3, 1).gaps, 2);
}

static void test_discarded_batch_is_a_gap(void **state) {
  struct batch *b = *state;
  hello(b);
  assert_int_equal(one_batch(b, 1, 1).event, BATCH_COMPLETE);
  FEED(b, "begin 2", BATCH_NOTHING);
  FEED(b, "end 2 5", BATCH_DISCARDED);
  struct batch_result res = one_batch(b, 3, 1);
  assert_int_equal(res.event, BATCH_COMPLETE);
  assert_int_equal(res.gaps, 1);
}

static void test_session_end(void **state) {
  struct batch *b = *state;
  assert_false(batch_session_end(b));
  hello(b);
  assert_int_equal(one_batch(b, 1, 1).event, BATCH_COMPLETE);
  assert_false(batch_session_end(b));

  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  assert_true(batch_session_end(b)); /* the open batch is discarded */
  assert_false(batch_session_end(b));
  /* Output after the end belongs to no session. */
  FEED(b, "end 1 1", BATCH_BAD_LINE);
  FEED(b, "begin 2", BATCH_BAD_LINE);

  hello(b);
  struct batch_result res = one_batch(b, 1, 1);
  assert_int_equal(res.event, BATCH_COMPLETE);
  assert_int_equal(res.gaps, 0);
}

static void test_bad_line_taints_batch(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "garbage outside", BATCH_BAD_LINE); /* harmless outside */
  assert_int_equal(one_batch(b, 1, 1).event, BATCH_COMPLETE);

  FEED(b, "begin 2", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  assert_why(FEED(b, "derive tcp protocol_counter x -1", BATCH_BAD_LINE),
             "VALUE");
  assert_why(FEED(b, "end 2 1", BATCH_DISCARDED), "bad line");

  /* An overlong line, as the channel reports it, taints too. */
  FEED(b, "begin 3", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  char *longline = malloc(RECORD_LINE_MAX + 1);
  assert_non_null(longline);
  memset(longline, 'x', RECORD_LINE_MAX + 1);
  struct batch_result res;
  batch_feed(b, longline, RECORD_LINE_MAX + 1, &res);
  free(longline);
  assert_int_equal(res.event, BATCH_BAD_LINE);
  assert_why(FEED(b, "end 3 1", BATCH_DISCARDED), "bad line");

  /* The taint ends with its batch. */
  assert_int_equal(one_batch(b, 4, 1).event, BATCH_COMPLETE);
}

static void test_info(void **state) {
  struct batch *b = *state;
  hello(b);
  struct batch_result res = FEED(b, "info probes a=yes b=no", BATCH_INFO);
  assert_non_null(res.record);
  assert_string_equal(res.record->text, "probes a=yes b=no");

  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  assert_why(FEED(b, "info in the middle", BATCH_BAD_LINE),
             "info inside a batch");
  assert_why(FEED(b, "end 1 1", BATCH_DISCARDED), "info");
}

/* A second hello in one staprun run is a bad line and starts nothing: the
 * session, its batch numbering and an open batch's taint go on as for any
 * bad line. Only a new run (batch_session_end) takes a hello again. */
static void test_second_hello_refused(void **state) {
  struct batch *b = *state;
  hello(b);
  assert_int_equal(one_batch(b, 1, 1).event, BATCH_COMPLETE);

  /* Between batches: refused, the session goes on at the next SEQ. */
  assert_why(FEED(b, "hello 1 tcp", BATCH_BAD_LINE),
             "second hello in one staprun run");
  struct batch_result res = one_batch(b, 2, 1);
  assert_int_equal(res.event, BATCH_COMPLETE);
  assert_int_equal(res.gaps, 0);
  /* A module that restarts its numbering after it: no new session, the
   * batches still count (no gap for going back). */
  assert_why(FEED(b, "hello 1 tcp", BATCH_BAD_LINE), "second hello");
  res = one_batch(b, 1, 1);
  assert_int_equal(res.event, BATCH_COMPLETE);
  assert_int_equal(res.gaps, 0);
  assert_int_equal(one_batch(b, 2, 1).gaps, 0);

  /* Inside a batch: the batch holds a bad line and is discarded. */
  FEED(b, "begin 3", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  assert_why(FEED(b, "hello 1 tcp", BATCH_BAD_LINE), "second hello");
  assert_why(FEED(b, "end 3 1", BATCH_DISCARDED), "bad line");
  assert_int_equal(one_batch(b, 4, 1).gaps, 1);

  /* The next run starts with a hello as always. */
  assert_false(batch_session_end(b));
  hello(b);
  res = one_batch(b, 1, 1);
  assert_int_equal(res.event, BATCH_COMPLETE);
  assert_int_equal(res.gaps, 0);
  assert_why(FEED(b, "hello 1 tcp", BATCH_BAD_LINE), "second hello");
}

/* Batches of value records, and whether one names a series twice: which
 * record (1-based) is the second naming it, 0 for none. */
struct dup_case {
  const char *name;
  const char *lines[6];
  size_t dup;
};

static const struct dup_case dup_cases[] = {
    {"one derive twice",
     {"derive tcp protocol_counter x 1", "derive tcp protocol_counter x 2"},
     2},
    {"one gauge twice", {"gauge tcp gauge g 1", "gauge tcp gauge g 1"}, 2},
    {"a derive and a gauge of one identifier",
     {"gauge tcp protocol_counter x 1", "derive tcp protocol_counter x 1"},
     2},
    {"an empty type instance twice",
     {"derive tcp-a protocol_counter - 1", "derive tcp-b protocol_counter - 1",
      "derive tcp-a protocol_counter - 3"},
     3},
    {"far apart",
     {"derive tcp protocol_counter a 1", "derive tcp protocol_counter b 1",
      "notify okay tcp protocol_counter a note",
      "derive tcp protocol_counter c 1", "derive tcp protocol_counter b 1"},
     5},
    {"distinct type instances",
     {"derive tcp protocol_counter x 1", "derive tcp protocol_counter y 1"},
     0},
    {"distinct types",
     {"derive tcp protocol_counter x 1", "derive tcp total_operations x 1"},
     0},
    {"distinct plugin instances",
     {"derive tcp protocol_counter x 1", "derive tcp-1 protocol_counter x 1"},
     0},
    {"names that join the same way",
     {"derive tcp ab c 1", "derive tcp a bc 1", "derive tcp-ab c d 1",
      "derive tcp-a bc d 1", "derive tcp-a b cd 1"},
     0},
    {"notifications are not series",
     {"notify warning tcp protocol_counter x one",
      "notify okay tcp protocol_counter x two",
      "derive tcp protocol_counter x 1"},
     0},
};

static void test_duplicate_series(void **state) {
  struct batch *b = *state;
  hello(b);
  unsigned seq = 0;
  for (size_t k = 0; k < ARRAY_SIZE(dup_cases); k++) {
    const struct dup_case *c = &dup_cases[k];
    char line[64];
    size_t n = 0;
    snprintf(line, sizeof(line), "begin %u", ++seq);
    FEED(b, line, BATCH_NOTHING);
    for (; n < ARRAY_SIZE(c->lines) && c->lines[n] != NULL; n++)
      FEED(b, c->lines[n], BATCH_NOTHING);
    snprintf(line, sizeof(line), "end %u %zu", seq, n);
    struct batch_result res;
    batch_feed(b, line, strlen(line), &res);
    enum batch_event want = c->dup ? BATCH_DISCARDED : BATCH_COMPLETE;
    if (res.event != want)
      fail_msg("%s: %s (why: %s), expected %s", c->name, event_name(res.event),
               res.why ? res.why : "-", event_name(want));
    if (c->dup == 0)
      continue;
    assert_why(res, "names one series twice");
    if (res.record == NULL || res.index != c->dup - 1)
      fail_msg("%s: the duplicate is record %zu, expected %zu", c->name,
               res.index + 1, c->dup);
  }
  /* A refused batch is missing from the sequence, like any discarded. */
  assert_int_equal(one_batch(b, seq + 1, 1).gaps, 0);
  FEED(b, "begin 100", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  FEED(b, "end 100 2", BATCH_DISCARDED);
  assert_int_equal(one_batch(b, seq + 3, 1).gaps, 1);
}

/* The duplicate cases again with a series table, as the plugin runs: the
 * series of all records, or of every other one, already in it (a table
 * series is checked as its record comes, a new one at the end). */
static void test_duplicate_series_with_table(void **state) {
  (void)state;
  for (int mode = 1; mode <= 2; mode++) {
    for (size_t k = 0; k < ARRAY_SIZE(dup_cases); k++) {
      const struct dup_case *c = &dup_cases[k];
      struct batch b;
      struct offsets *o = offsets_new(64);
      assert_non_null(o);
      assert_int_equal(batch_init(&b, "tcp", 0), 0);
      batch_use_series(&b, o);
      size_t n = 0;
      for (; n < ARRAY_SIZE(c->lines) && c->lines[n] != NULL; n++) {
        struct record r;
        const char *why;
        assert_int_equal(
            record_parse(c->lines[n], strlen(c->lines[n]), &r, &why), 0);
        struct series_name name = {{r.plugin_instance, r.type, r.type_instance},
                                   {strlen(r.plugin_instance), strlen(r.type),
                                    strlen(r.type_instance)}};
        if (mode == 1 || n % 2 == 0)
          assert_true(offsets_claim_name(o, &name, offsets_hash(&name)) >= 0);
      }
      hello(&b);
      FEED(&b, "begin 1", BATCH_NOTHING);
      for (size_t i = 0; i < n; i++)
        FEED(&b, c->lines[i], BATCH_NOTHING);
      char line[64];
      snprintf(line, sizeof(line), "end 1 %zu", n);
      struct batch_result res;
      batch_feed(&b, line, strlen(line), &res);
      enum batch_event want = c->dup ? BATCH_DISCARDED : BATCH_COMPLETE;
      if (res.event != want || (c->dup && res.index != c->dup - 1))
        fail_msg("%s (mode %d): %s, duplicate %zu, expected %s, %zu", c->name,
                 mode, event_name(res.event), res.index + 1, event_name(want),
                 c->dup);
      batch_free(&b);
      offsets_free(o);
    }
  }
}

/* With a series table, a record keeps its series' id, or -1 for a series
 * the table does not hold yet, and gives back the same record either way,
 * whatever the order of the records from one batch to the next. */
static void test_series_from_the_table(void **state) {
  (void)state;
  struct batch b;
  struct offsets *o = offsets_new(16);
  assert_int_equal(batch_init(&b, "tcp", 0), 0);
  batch_use_series(&b, o);
  assert_int_equal(offsets_claim(o, "tcp/protocol_counter/a"), 0);
  assert_int_equal(offsets_claim(o, "tcp-x/gauge/"), 0);
  hello(&b);
  static const char *const orders[][3] = {
      {"derive tcp protocol_counter a 1", "gauge tcp-x gauge - 2.5",
       "derive tcp protocol_counter new 3"},
      {"derive tcp protocol_counter new 3", "derive tcp protocol_counter a 1",
       "gauge tcp-x gauge - 2.5"},
  };
  for (unsigned k = 0; k < 2; k++) {
    char line[32];
    snprintf(line, sizeof(line), "begin %u", k + 1);
    FEED(&b, line, BATCH_NOTHING);
    for (int i = 0; i < 3; i++)
      FEED(&b, orders[k][i], BATCH_NOTHING);
    snprintf(line, sizeof(line), "end %u 3", k + 1);
    FEED(&b, line, BATCH_COMPLETE);
    for (size_t i = 0; i < 3; i++) {
      struct record want, got;
      const char *why;
      record_parse(orders[k][i], strlen(orders[k][i]), &want, &why);
      memset(&got, 0, sizeof(got));
      batch_record(&b, i, &got);
      assert_string_equal(got.plugin_instance, want.plugin_instance);
      assert_string_equal(got.type, want.type);
      assert_string_equal(got.type_instance, want.type_instance);
      assert_int_equal(got.kind, want.kind);
      assert_int_equal(got.nvalues, want.nvalues);
      long id = strcmp(want.type_instance, "a") == 0 ? 0
                : strcmp(want.type, "gauge") == 0    ? 1
                                                     : -1;
      assert_int_equal(batch_series(&b, i), id);
    }
  }
  batch_free(&b);
  offsets_free(o);
}

/* Full batches of MaxBatchRecords (4096) distinct series, with and without
 * one repeated at the far end. */
static void test_duplicate_in_full_batches(void **state) {
  struct batch *b = *state;
  hello(b);
  char line[96];
  for (unsigned seq = 1; seq <= 20; seq++) {
    snprintf(line, sizeof(line), "begin %u", seq);
    FEED(b, line, BATCH_NOTHING);
    for (unsigned i = 0; i < BATCH_DEFAULT_MAX_RECORDS; i++) {
      /* The odd batches repeat the first series as their last record. */
      unsigned name = (seq % 2 && i == BATCH_DEFAULT_MAX_RECORDS - 1) ? 0 : i;
      snprintf(line, sizeof(line), "derive tcp-%u protocol_counter p-%u %u",
               name % 7, name, seq);
      FEED(b, line, BATCH_NOTHING);
    }
    snprintf(line, sizeof(line), "end %u %u", seq, BATCH_DEFAULT_MAX_RECORDS);
    struct batch_result res;
    batch_feed(b, line, strlen(line), &res);
    if (seq % 2) {
      assert_int_equal(res.event, BATCH_DISCARDED);
      assert_int_equal(res.index, BATCH_DEFAULT_MAX_RECORDS - 1);
      assert_string_equal(res.record->type_instance, "p-0");
    } else {
      assert_int_equal(res.event, BATCH_COMPLETE);
    }
  }
}

/* The check is a hash set, not a pairwise scan: one batch of 200,000
 * series takes well under a second where a pairwise scan (2e10 name
 * comparisons) would take minutes. The bound is loose for a busy machine. */
static void test_duplicate_check_is_not_quadratic(void **state) {
  (void)state;
  enum { N = 200000 };
  struct batch b;
  assert_int_equal(batch_init(&b, "tcp", N), 0);
  hello(&b);
  FEED(&b, "begin 1", BATCH_NOTHING);
  char line[96];
  for (unsigned i = 0; i < N; i++) {
    snprintf(line, sizeof(line), "derive tcp protocol_counter p-%u 1", i);
    FEED(&b, line, BATCH_NOTHING);
  }
  snprintf(line, sizeof(line), "end 1 %u", (unsigned)N);
  uint64_t t0 = now_ms();
  FEED(&b, line, BATCH_COMPLETE);
  uint64_t took = now_ms() - t0;
  batch_free(&b);
  if (took > 10000)
    fail_msg("the duplicate check of %d records took %llu ms", N,
             (unsigned long long)took);
}

static void test_init_checks_the_group(void **state) {
  (void)state;
  struct batch b;
  char name[RECORD_NAME_SIZE + 1];
  assert_int_equal(batch_init(&b, "", 0), -1);
  memset(name, 'g', RECORD_NAME_SIZE);
  name[RECORD_NAME_SIZE] = '\0';
  assert_int_equal(batch_init(&b, name, 0), -1);
  name[RECORD_NAME_SIZE - 1] = '\0';
  assert_int_equal(batch_init(&b, name, 0), 0);
  batch_free(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_complete_batch),
      T(test_empty_batch_is_complete),
      T(test_count_mismatch_discards),
      T(test_seq_mismatch_discards),
      T(test_begin_inside_open_batch),
      T(test_records_outside_batch),
      T(test_records_before_hello),
      T(test_wrong_protocol_version_refused),
      T(test_wrong_group_refused),
      T(test_second_wrong_hello_is_a_bad_line),
      T(test_plugin_instance_must_be_the_group),
      T(test_health_types_are_the_plugins),
      T(test_too_many_records),
      T(test_default_max_records),
      T(test_gaps),
      T(test_discarded_batch_is_a_gap),
      T(test_session_end),
      T(test_bad_line_taints_batch),
      T(test_info),
      T(test_second_hello_refused),
      T(test_duplicate_series),
      T(test_duplicate_series_with_table),
      T(test_series_from_the_table),
      T(test_duplicate_in_full_batches),
      T(test_duplicate_check_is_not_quadratic),
      T(test_init_checks_the_group),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
