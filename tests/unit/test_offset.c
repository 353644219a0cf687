/* offsets_*: counters stay monotonic across module restarts, and a value
 * that goes back within a session is held, not folded into the offset
 * (modules/PROTOCOL.md, "Counters across module restarts"). */
#include "helpers.h"

#include "plugin/offset.h"

#include <stdio.h>

/* The value offsets_apply dispatches for key/raw; fails on a full table. */
#define APPLY(o, key, raw) apply_at(o, key, raw, __FILE__, __LINE__)

static int64_t apply_at(struct offsets *o, const char *key, int64_t raw,
                        const char *file, int at) {
  int64_t out = -12345;
  if (offsets_apply(o, key, raw, &out) != 0) {
    print_error("offsets_apply(%s, %lld) failed\n", key, (long long)raw);
    _fail(file, at);
  }
  return out;
}

static void test_new_needs_room(void **state) {
  (void)state;
  assert_null(offsets_new(0));
  struct offsets *o = offsets_new(1);
  assert_non_null(o);
  assert_int_equal(offsets_count(o), 0);
  offsets_free(o);
  offsets_free(NULL);
}

static void test_values_pass_through_in_first_session(void **state) {
  (void)state;
  struct offsets *o = offsets_new(16);
  offsets_new_session(o); /* the first hello: nothing to carry */
  assert_int_equal(APPLY(o, "a", 0), 0);
  assert_int_equal(APPLY(o, "a", 5), 5);
  assert_int_equal(APPLY(o, "a", 5), 5);
  assert_int_equal(APPLY(o, "a", 9), 9);
  assert_int_equal(offsets_count(o), 1);
  offsets_free(o);
}

static void test_monotonic_across_sessions(void **state) {
  (void)state;
  struct offsets *o = offsets_new(16);
  assert_int_equal(APPLY(o, "a", 10), 10);
  offsets_new_session(o); /* the module was reloaded: raw restarts at 0 */
  assert_int_equal(APPLY(o, "a", 0), 10);
  assert_int_equal(APPLY(o, "a", 3), 13);
  offsets_new_session(o);
  assert_int_equal(APPLY(o, "a", 1), 14);
  /* A session that restarts at a value above the previous one still adds. */
  offsets_new_session(o);
  assert_int_equal(APPLY(o, "a", 20), 34);
  offsets_free(o);
}

static void test_session_without_values(void **state) {
  (void)state;
  struct offsets *o = offsets_new(16);
  assert_int_equal(APPLY(o, "a", 7), 7);
  offsets_new_session(o);
  offsets_new_session(o); /* a session that crashed before any batch */
  assert_int_equal(APPLY(o, "a", 2), 9);
  offsets_free(o);
}

/* A script for one series: raw values, SESSION for a new session (hello),
 * and after each value what is dispatched and whether it is a decrease. */
#define SESSION (-1)
#define END (-2)

struct step {
  int64_t raw;
  int64_t want;
  bool decreased;
};

struct script {
  const char *name;
  struct step steps[16];
};

static const struct script scripts[] = {
    {"9,5 alternating within a session never climbs",
     {{9, 9, false},
      {5, 9, true},
      {9, 9, false},
      {5, 9, true},
      {9, 9, false},
      {5, 9, true},
      {END, 0, false}}},
    {"a reset within a session holds, then climbs from the old value",
     {{10, 10, false},
      {0, 10, true},
      {4, 10, false},
      {10, 10, false},
      {12, 12, false},
      {20, 20, false},
      {END, 0, false}}},
    {"a dip recovers without a spike",
     {{9, 9, false},
      {5, 9, true},
      {7, 9, false},
      {9, 9, false},
      {10, 10, false},
      {END, 0, false}}},
    {"every value below the one before is a decrease",
     {{9, 9, false},
      {5, 9, true},
      {3, 9, true},
      {3, 9, false},
      {END, 0, false}}},
    {"a restart adds the last session's value",
     {{10, 10, false},
      {SESSION, 0, false},
      {0, 10, false},
      {3, 13, false},
      {SESSION, 0, false},
      {1, 14, false},
      {SESSION, 0, false},
      {20, 34, false},
      {END, 0, false}}},
    {"a restart while held goes on from the held value",
     {{10, 10, false},
      {4, 10, true},
      {SESSION, 0, false},
      {0, 10, false},
      {3, 13, false},
      {END, 0, false}}},
    {"the first value of a session is never a decrease",
     {{10, 10, false},
      {SESSION, 0, false},
      {2, 12, false},
      {1, 12, true},
      {END, 0, false}}},
    {"a reset then a restart: the restart still adds",
     {{100, 100, false},
      {0, 100, true},
      {150, 150, false},
      {SESSION, 0, false},
      {5, 155, false},
      {END, 0, false}}},
};

static void test_scripts(void **state) {
  (void)state;
  for (size_t k = 0; k < ARRAY_SIZE(scripts); k++) {
    const struct script *sc = &scripts[k];
    struct offsets *o = offsets_new(4);
    int64_t last_high = 0, prev_raw = 0;
    for (size_t i = 0; sc->steps[i].raw != END; i++) {
      const struct step *st = &sc->steps[i];
      if (st->raw == SESSION) {
        offsets_new_session(o);
        last_high = prev_raw = 0;
        continue;
      }
      struct offsets_step got;
      assert_int_equal(offsets_update(o, "a", 0, st->raw, &got), 0);
      if (st->raw > last_high)
        last_high = st->raw;
      if (got.value != st->want || got.decreased != st->decreased ||
          got.high != last_high || (got.decreased && got.previous != prev_raw))
        fail_msg("%s: step %zu (raw %lld): value %lld decreased %d high %lld "
                 "previous %lld, expected value %lld decreased %d high %lld "
                 "previous %lld",
                 sc->name, i + 1, (long long)st->raw, (long long)got.value,
                 got.decreased, (long long)got.high, (long long)got.previous,
                 (long long)st->want, st->decreased, (long long)last_high,
                 (long long)prev_raw);
      prev_raw = st->raw;
    }
    offsets_free(o);
  }
}

/* Never a negative rate, and the dispatched value never runs ahead of the
 * module's own total: whatever a session's values do, the series ends at
 * the sum of the sessions' highest values. */
static void test_never_backwards(void **state) {
  (void)state;
  struct offsets *o = offsets_new(4);
  unsigned seed = 12345;
  int64_t prev = 0, sum_high = 0, high = 0;
  for (int i = 0; i < 20000; i++) {
    seed = seed * 1103515245u + 12345u;
    if ((seed >> 16) % 97 == 0) {
      offsets_new_session(o);
      sum_high += high;
      high = 0;
      continue;
    }
    int64_t raw = (int64_t)((seed >> 8) % 1000);
    if (raw > high)
      high = raw;
    int64_t v = APPLY(o, "a", raw);
    if (v < prev)
      fail_msg("step %d: %lld after %lld", i, (long long)v, (long long)prev);
    if (v != sum_high + high)
      fail_msg("step %d: %lld, expected %lld", i, (long long)v,
               (long long)(sum_high + high));
    prev = v;
  }
  offsets_free(o);
}

static void test_series_are_independent(void **state) {
  (void)state;
  struct offsets *o = offsets_new(16);
  assert_int_equal(APPLY(o, "tcp/protocol_counter/a", 10), 10);
  assert_int_equal(APPLY(o, "tcp/protocol_counter/b", 100), 100);
  /* a goes back and is held; b is not affected. */
  assert_int_equal(APPLY(o, "tcp/protocol_counter/a", 2), 10);
  assert_int_equal(APPLY(o, "tcp/protocol_counter/b", 101), 101);
  offsets_new_session(o);
  assert_int_equal(APPLY(o, "tcp/protocol_counter/a", 1), 11);
  assert_int_equal(APPLY(o, "tcp/protocol_counter/b", 1), 102);
  offsets_free(o);
}

static void test_absent_series_keeps_its_value(void **state) {
  (void)state;
  struct offsets *o = offsets_new(16);
  assert_int_equal(APPLY(o, "a", 10), 10);
  assert_int_equal(APPLY(o, "b", 20), 20);
  offsets_new_session(o);
  assert_int_equal(APPLY(o, "a", 5), 15); /* b is quiet this session */
  offsets_new_session(o);
  assert_int_equal(APPLY(o, "b", 3), 23);
  assert_int_equal(APPLY(o, "a", 1), 16);
  offsets_free(o);
}

static void test_many_series(void **state) {
  (void)state;
  enum { N = 3000 };
  struct offsets *o = offsets_new(N);
  char key[64];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "tcp/protocol_counter/port-%d", i);
    assert_int_equal(APPLY(o, key, i), i);
  }
  assert_int_equal(offsets_count(o), N);
  offsets_new_session(o);
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "tcp/protocol_counter/port-%d", i);
    int64_t got = APPLY(o, key, 1);
    if (got != i + 1)
      fail_msg("%s: %lld, expected %d", key, (long long)got, i + 1);
  }
  assert_int_equal(offsets_count(o), N);
  offsets_free(o);
}

static void test_table_full(void **state) {
  (void)state;
  struct offsets *o = offsets_new(3);
  int64_t out = 42;
  assert_int_equal(APPLY(o, "a", 1), 1);
  assert_int_equal(APPLY(o, "b", 2), 2);
  assert_int_equal(APPLY(o, "c", 3), 3);
  assert_int_equal(offsets_apply(o, "d", 4, &out), -1);
  assert_int_equal(out, 42); /* untouched */
  assert_int_equal(offsets_count(o), 3);
  /* Known series still work, and the refused one is still refused. */
  assert_int_equal(APPLY(o, "a", 5), 5);
  assert_int_equal(offsets_apply(o, "d", 4, &out), -1);
  offsets_new_session(o);
  assert_int_equal(APPLY(o, "c", 1), 4);
  assert_int_equal(offsets_apply(o, "e", 1, &out), -1);
  offsets_free(o);
}

static void test_saturates_near_int64_max(void **state) {
  (void)state;
  struct offsets *o = offsets_new(4);
  assert_int_equal(APPLY(o, "a", INT64_MAX - 5), INT64_MAX - 5);
  offsets_new_session(o);
  assert_int_equal(APPLY(o, "a", 3), INT64_MAX - 2);
  assert_int_equal(APPLY(o, "a", 10), INT64_MAX); /* would overflow */
  offsets_new_session(o);                         /* base saturates */
  assert_int_equal(APPLY(o, "a", 0), INT64_MAX);
  assert_int_equal(APPLY(o, "a", INT64_MAX), INT64_MAX);
  assert_int_equal(APPLY(o, "a", 1), INT64_MAX); /* held */

  assert_int_equal(APPLY(o, "b", INT64_MAX), INT64_MAX);
  assert_int_equal(APPLY(o, "b", 1), INT64_MAX);
  offsets_free(o);
}

/* The parser never gives a negative value; the table still copes. */
static void test_negative_raw_counts_as_zero(void **state) {
  (void)state;
  struct offsets *o = offsets_new(4);
  assert_int_equal(APPLY(o, "a", 5), 5);
  assert_int_equal(APPLY(o, "a", -3), 5); /* 0: held at 5 */
  assert_int_equal(APPLY(o, "a", 2), 5);
  assert_int_equal(APPLY(o, "a", 6), 6);
  offsets_free(o);
}

/* Each data source of a counter series has its own offset; the series
 * takes one place in the table whatever its data sources. */
static void test_data_sources_of_one_series(void **state) {
  (void)state;
  struct offsets *o = offsets_new(1);
  struct offsets_step rx, tx;
  assert_int_equal(offsets_update(o, "tcp/if_octets/", 0, 100, &rx), 0);
  assert_int_equal(offsets_update(o, "tcp/if_octets/", 1, 200, &tx), 0);
  assert_int_equal(offsets_count(o), 1);
  offsets_new_session(o);
  assert_int_equal(offsets_update(o, "tcp/if_octets/", 0, 5, &rx), 0);
  assert_int_equal(offsets_update(o, "tcp/if_octets/", 1, 50, &tx), 0);
  assert_int_equal(rx.value, 105);
  assert_int_equal(tx.value, 250);
  assert_false(tx.decreased); /* a new session, not a decrease */
  assert_int_equal(offsets_update(o, "tcp/if_octets/", 1, 40, &tx), 0);
  assert_true(tx.decreased);
  assert_int_equal(tx.value, 250);
  /* A data source first seen in a later session starts from nothing. */
  assert_int_equal(offsets_update(o, "tcp/if_octets/", 2, 7, &rx), 0);
  assert_int_equal(rx.value, 7);
  assert_int_equal(offsets_update(o, "tcp/if_octets/", OFFSETS_MAX_DS, 1, &rx),
                   -1);
  offsets_free(o);
}

/* Gauges and notifications take places too, and share the cap with the
 * counters; a claimed name is claimed again at no cost. */
static void test_claim_shares_the_cap(void **state) {
  (void)state;
  struct offsets *o = offsets_new(3);
  int64_t out;
  assert_int_equal(offsets_claim(o, "tcp/gauge/g"), 0);
  assert_int_equal(offsets_claim(o, "tcp/gauge/g"), 0);
  assert_int_equal(offsets_apply(o, "tcp/protocol_counter/a", 4, &out), 0);
  assert_int_equal(offsets_claim(o, "tcp/protocol_counter/a"), 0);
  assert_int_equal(offsets_claim(o, "tcp/protocol_counter/n"), 0);
  assert_int_equal(offsets_count(o), 3);
  assert_int_equal(offsets_claim(o, "tcp/gauge/h"), -1);
  assert_int_equal(offsets_apply(o, "tcp/protocol_counter/b", 1, &out), -1);
  /* A gauge's series may later carry a counter: it has its place. */
  assert_int_equal(offsets_apply(o, "tcp/gauge/g", 9, &out), 0);
  assert_int_equal(out, 9);
  offsets_new_session(o);
  assert_int_equal(offsets_apply(o, "tcp/protocol_counter/a", 1, &out), 0);
  assert_int_equal(out, 5);
  assert_int_equal(offsets_count(o), 3);
  offsets_free(o);
}

/* A module inventing 400,000 gauge names: the table stays at MaxSeries and
 * so does the memory behind it (counted through malloc_usable_size would
 * be glibc's business; the table's own count and a bounded probe are
 * ours). */
static void test_invented_gauge_names_stay_capped(void **state) {
  (void)state;
  enum { MAX = 4096, INVENTED = 400000 };
  struct offsets *o = offsets_new(MAX);
  char key[64];
  size_t refused = 0;
  uint64_t t0 = now_ms();
  for (int i = 0; i < INVENTED; i++) {
    snprintf(key, sizeof(key), "tcp/gauge/invented-%d", i);
    if (offsets_claim(o, key) != 0)
      refused++;
  }
  assert_int_equal(offsets_count(o), MAX);
  assert_int_equal(refused, INVENTED - MAX);
  /* The first MaxSeries names keep their places. */
  assert_int_equal(offsets_claim(o, "tcp/gauge/invented-0"), 0);
  assert_int_equal(offsets_claim(o, "tcp/gauge/invented-4095"), 0);
  assert_int_equal(offsets_claim(o, "tcp/gauge/invented-4096"), -1);
  /* A full table is at most half full: a refusal is a short probe, not a
   * walk of the table (400k in well under a few seconds, with ASan). */
  assert_true(now_ms() - t0 < 5000);
  offsets_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_needs_room),
      cmocka_unit_test(test_values_pass_through_in_first_session),
      cmocka_unit_test(test_monotonic_across_sessions),
      cmocka_unit_test(test_session_without_values),
      cmocka_unit_test(test_scripts),
      cmocka_unit_test(test_never_backwards),
      cmocka_unit_test(test_series_are_independent),
      cmocka_unit_test(test_absent_series_keeps_its_value),
      cmocka_unit_test(test_many_series),
      cmocka_unit_test(test_table_full),
      cmocka_unit_test(test_saturates_near_int64_max),
      cmocka_unit_test(test_negative_raw_counts_as_zero),
      cmocka_unit_test(test_data_sources_of_one_series),
      cmocka_unit_test(test_claim_shares_the_cap),
      cmocka_unit_test(test_invented_gauge_names_stay_capped),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("offset", tests, NULL, NULL);
}
