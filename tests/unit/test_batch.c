/* batch_feed and batch_session_end: the batches of a module session
 * (modules/PROTOCOL.md, "Batches"). */
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

  assert_int_equal(b->n, 3);
  const struct record *r = b->records;
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
  assert_int_equal(b->n, 0);
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
  assert_int_equal(b->n, 1);
  assert_int_equal(b->records[0].derive[0], 2);
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
  /* A later good hello starts one. */
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

static void test_refused_hello_ends_the_session(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "hello 2 tcp", BATCH_REFUSED);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_BAD_LINE);
  FEED(b, "end 1 1", BATCH_BAD_LINE);
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

static void test_too_many_records(void **state) {
  (void)state;
  struct batch b;
  assert_int_equal(batch_init(&b, "tcp", 3), 0);
  hello(&b);
  FEED(&b, "begin 1", BATCH_NOTHING);
  for (int i = 0; i < 3; i++)
    FEED(&b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  FEED(&b, "end 1 3", BATCH_COMPLETE);

  FEED(&b, "begin 2", BATCH_NOTHING);
  for (int i = 0; i < 4; i++)
    FEED(&b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
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
      snprintf(line, sizeof(line), "derive tcp protocol_counter x %u", i);
      FEED(b, line, BATCH_NOTHING);
    }
    snprintf(line, sizeof(line), "end %u %u", seq, n);
    if (seq == 1) {
      FEED(b, line, BATCH_COMPLETE);
      assert_int_equal(b->n, BATCH_DEFAULT_MAX_RECORDS);
      assert_int_equal(b->records[4095].derive[0], 4095);
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
  /* A new session counts from 1 again. */
  hello(b);
  assert_int_equal(one_batch(b, 1, 1).gaps, 0);
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

static void test_hello_inside_batch(void **state) {
  struct batch *b = *state;
  hello(b);
  FEED(b, "begin 1", BATCH_NOTHING);
  FEED(b, "derive tcp protocol_counter x 1", BATCH_NOTHING);
  assert_why(FEED(b, "hello 1 tcp", BATCH_HELLO), "inside a batch");
  FEED(b, "end 1 1", BATCH_BAD_LINE);
  assert_int_equal(one_batch(b, 1, 1).gaps, 0);
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
      T(test_refused_hello_ends_the_session),
      T(test_plugin_instance_must_be_the_group),
      T(test_too_many_records),
      T(test_default_max_records),
      T(test_gaps),
      T(test_discarded_batch_is_a_gap),
      T(test_session_end),
      T(test_bad_line_taints_batch),
      T(test_info),
      T(test_hello_inside_batch),
      T(test_init_checks_the_group),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
