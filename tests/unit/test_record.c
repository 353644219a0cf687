/* record_parse: one line of the record protocol (modules/PROTOCOL.md).
 * Table-driven: every row of `valid' is parsed and every field of the result
 * compared; every row of `invalid' must be refused for the stated reason.
 * Each row runs as its own cmocka test, named by the row. Lines are parsed
 * from an exact-size heap copy without a terminating NUL, so the sanitizer
 * catches a read past `len'. */
#include "helpers.h"

#include "plugin/record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A string literal as (pointer, length), so a NUL inside it counts. */
#define L(s) s, sizeof(s) - 1

struct valid_case {
  const char *name;
  const char *line;
  size_t len;
  struct record want;
};

struct invalid_case {
  const char *name;
  const char *line;
  size_t len;
  const char *why; /* a substring of the reason */
};

/* clang-format off */
static const struct valid_case valid[] = {
  {"hello", L("hello 1 tcp"),
   {.kind = RECORD_HELLO, .version = 1, .group = "tcp"}},
  {"hello with another version (the batch refuses it)", L("hello 2 tcp"),
   {.kind = RECORD_HELLO, .version = 2, .group = "tcp"}},
  {"hello with the largest version", L("hello 1000000 tcp"),
   {.kind = RECORD_HELLO, .version = 1000000, .group = "tcp"}},
  {"hello with leading zeros", L("hello 001 tcp"),
   {.kind = RECORD_HELLO, .version = 1, .group = "tcp"}},
  {"info", L("info probes tcp:a=yes tcp:b=no"),
   {.kind = RECORD_INFO, .text = "probes tcp:a=yes tcp:b=no"}},
  {"info without text", L("info"), {.kind = RECORD_INFO, .text = ""}},
  {"info keeps inner and trailing spaces", L("info  a   b "),
   {.kind = RECORD_INFO, .text = "a   b "}},
  {"info replaces control characters", L("info a\tb\x01" "c\x7f" "d\re"),
   {.kind = RECORD_INFO, .text = "a?b?c?d?e"}},
  {"begin", L("begin 1"), {.kind = RECORD_BEGIN, .seq = 1}},
  {"begin 0", L("begin 0"), {.kind = RECORD_BEGIN, .seq = 0}},
  {"begin 2^64-1", L("begin 18446744073709551615"),
   {.kind = RECORD_BEGIN, .seq = UINT64_MAX}},
  {"end", L("end 7 3"), {.kind = RECORD_END, .seq = 7, .count = 3}},
  {"end of an empty batch", L("end 1 0"),
   {.kind = RECORD_END, .seq = 1, .count = 0}},
  {"derive", L("derive tcp protocol_counter retransmits 3"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp",
    .type = "protocol_counter", .type_instance = "retransmits", .derive = {3}, .nvalues = 1}},
  {"derive 0", L("derive tcp protocol_counter retransmits 0"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp",
    .type = "protocol_counter", .type_instance = "retransmits", .derive = {0}, .nvalues = 1}},
  {"derive with two values (if_octets rx tx)",
   L("derive netdev-eth0 if_octets - 1500 9000"),
   {.kind = RECORD_DERIVE, .plugin_instance = "netdev-eth0",
    .type = "if_octets", .type_instance = "", .derive = {1500, 9000},
    .nvalues = 2}},
  {"derive with 8 values", L("derive tcp t x 1 2 3 4 5 6 7 8"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp", .type = "t",
    .type_instance = "x", .derive = {1, 2, 3, 4, 5, 6, 7, 8}, .nvalues = 8}},
  {"gauge with two values", L("gauge tcp t x 0.5 nan"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp", .type = "t",
    .type_instance = "x", .gauge = {0.5, NAN}, .nvalues = 2}},
  {"derive 2^63-1", L("derive tcp protocol_counter x 9223372036854775807"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp",
    .type = "protocol_counter", .type_instance = "x", .derive = {INT64_MAX}, .nvalues = 1}},
  {"derive with 20 digits of leading zeros",
   L("derive tcp protocol_counter x 00000000000000000042"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp",
    .type = "protocol_counter", .type_instance = "x", .derive = {42}, .nvalues = 1}},
  {"'-' as type instance means empty", L("derive tcp protocol_counter - 5"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp",
    .type = "protocol_counter", .type_instance = "", .derive = {5}, .nvalues = 1}},
  {"'--' as type instance is literal", L("derive tcp protocol_counter -- 5"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp",
    .type = "protocol_counter", .type_instance = "--", .derive = {5}, .nvalues = 1}},
  {"every name character",
   L("derive tcp-a_B.c:d+e,f-9 protocol_counter Z.y_x:w+v,u-0 1"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp-a_B.c:d+e,f-9",
    .type = "protocol_counter", .type_instance = "Z.y_x:w+v,u-0",
    .derive = {1}, .nvalues = 1}},
  {"gauge decimal", L("gauge tcp-5001 gauge - 1.5"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp-5001", .type = "gauge",
    .type_instance = "", .gauge = {1.5}, .nvalues = 1}},
  {"gauge negative", L("gauge tcp gauge x -2.25"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp", .type = "gauge",
    .type_instance = "x", .gauge = {-2.25}, .nvalues = 1}},
  {"gauge with sign and exponent", L("gauge tcp gauge x +1e3"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp", .type = "gauge",
    .type_instance = "x", .gauge = {1000.0}, .nvalues = 1}},
  {"gauge with negative exponent", L("gauge tcp gauge x 1E-3"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp", .type = "gauge",
    .type_instance = "x", .gauge = {1e-3}, .nvalues = 1}},
  {"gauge integer", L("gauge tcp gauge x 42"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp", .type = "gauge",
    .type_instance = "x", .gauge = {42.0}, .nvalues = 1}},
  {"gauge nan", L("gauge tcp gauge x nan"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp", .type = "gauge",
    .type_instance = "x", .gauge = {NAN}, .nvalues = 1}},
  {"gauge NaN", L("gauge tcp gauge x NaN"),
   {.kind = RECORD_GAUGE, .plugin_instance = "tcp", .type = "gauge",
    .type_instance = "x", .gauge = {NAN}, .nvalues = 1}},
  {"notify failure", L("notify failure tcp protocol_counter retransmits bad"),
   {.kind = RECORD_NOTIFY, .severity = RECORD_FAILURE,
    .plugin_instance = "tcp", .type = "protocol_counter",
    .type_instance = "retransmits", .text = "bad"}},
  {"notify warning", L("notify warning tcp-80 protocol_counter - a b c"),
   {.kind = RECORD_NOTIFY, .severity = RECORD_WARNING,
    .plugin_instance = "tcp-80", .type = "protocol_counter",
    .type_instance = "", .text = "a b c"}},
  {"notify okay", L("notify okay tcp protocol_counter retransmits fine"),
   {.kind = RECORD_NOTIFY, .severity = RECORD_OKAY, .plugin_instance = "tcp",
    .type = "protocol_counter", .type_instance = "retransmits",
    .text = "fine"}},
  {"notify keeps the message's spaces",
   L("notify okay tcp t x   two  spaces "),
   {.kind = RECORD_NOTIFY, .severity = RECORD_OKAY, .plugin_instance = "tcp",
    .type = "t", .type_instance = "x", .text = "two  spaces "}},
  {"notify replaces control characters",
   L("notify warning tcp t x a\tb\x01" "c\x7f" "d\x1b[0m"),
   {.kind = RECORD_NOTIFY, .severity = RECORD_WARNING,
    .plugin_instance = "tcp", .type = "t", .type_instance = "x",
    .text = "a?b?c?d?[0m"}},
  {"notify keeps bytes above ASCII", L("notify okay tcp t x caf\xc3\xa9"),
   {.kind = RECORD_NOTIFY, .severity = RECORD_OKAY, .plugin_instance = "tcp",
    .type = "t", .type_instance = "x", .text = "caf\xc3\xa9"}},
  {"CR LF: begin", L("begin 5\r"), {.kind = RECORD_BEGIN, .seq = 5}},
  {"CR LF: info", L("info hi\r"), {.kind = RECORD_INFO, .text = "hi"}},
  {"CR LF: notify", L("notify okay tcp t x m\r"),
   {.kind = RECORD_NOTIFY, .severity = RECORD_OKAY, .plugin_instance = "tcp",
    .type = "t", .type_instance = "x", .text = "m"}},
  {"CR LF: derive", L("derive tcp t x 9\r"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp", .type = "t",
    .type_instance = "x", .derive = {9}, .nvalues = 1}},
  {"several spaces between fields", L("derive   tcp  t   x    7"),
   {.kind = RECORD_DERIVE, .plugin_instance = "tcp", .type = "t",
    .type_instance = "x", .derive = {7}, .nvalues = 1}},
  {"leading and trailing spaces", L("  end 3 2  "),
   {.kind = RECORD_END, .seq = 3, .count = 2}},
  {"len ends before the string does", "begin 12", 7,
   {.kind = RECORD_BEGIN, .seq = 1}},
};

static const struct invalid_case invalid[] = {
  {"empty line", L(""), "empty line"},
  {"only spaces", L("   "), "empty line"},
  {"only CR", L("\r"), "empty line"},
  {"unknown record", L("foo 1"), "unknown record type"},
  {"record names are case-sensitive", L("DERIVE tcp t x 1"),
   "unknown record type"},
  {"record name glued to a field", L("hello1 1 tcp"), "unknown record type"},
  {"tab after the record name", L("begin\t1"), "unknown record type"},
  {"leading tab", L("\tbegin 1"), "unknown record type"},
  {"NUL at the end", L("begin 1\0"), "NUL"},
  {"NUL inside", L("info a\0b"), "NUL"},
  {"only NUL", L("\0"), "NUL"},
  {"NUL before more fields", L("derive tcp t x 1\0 junk"), "NUL"},

  {"hello without fields", L("hello"), "hello takes 2 fields"},
  {"hello without group", L("hello 1"), "hello takes 2 fields"},
  {"hello with an extra field", L("hello 1 tcp x"), "hello takes 2 fields"},
  {"hello version not a number", L("hello x tcp"), "VERSION is not a number"},
  {"hello version negative", L("hello -1 tcp"), "VERSION is not a number"},
  {"hello version decimal", L("hello 1.0 tcp"), "VERSION is not a number"},
  {"hello version too large", L("hello 1000001 tcp"),
   "VERSION is not a number"},
  {"hello version 2^64", L("hello 18446744073709551616 tcp"),
   "VERSION is not a number"},
  {"hello group with '/'", L("hello 1 tcp/x"), "character outside"},
  {"hello group with a tab", L("hello 1 tcp\t"), "character outside"},

  {"begin without SEQ", L("begin"), "begin takes 1 field"},
  {"begin with an extra field", L("begin 1 2"), "begin takes 1 field"},
  {"begin negative", L("begin -1"), "SEQ is not"},
  {"begin with '+'", L("begin +1"), "SEQ is not"},
  {"begin decimal", L("begin 1.0"), "SEQ is not"},
  {"begin hex", L("begin 0x1"), "SEQ is not"},
  {"begin 2^64", L("begin 18446744073709551616"), "SEQ is not"},
  {"begin 21 digits", L("begin 123456789012345678901"), "SEQ is not"},
  {"begin 21 digits of leading zeros", L("begin 000000000000000000001"),
   "SEQ is not"},
  {"begin with a trailing tab", L("begin 1\t"), "SEQ is not"},
  {"begin with two CRs", L("begin 1\r\r"), "SEQ is not"},
  {"end without fields", L("end"), "end takes 2 fields"},
  {"end without COUNT", L("end 1"), "end takes 2 fields"},
  {"end with an extra field", L("end 1 2 3"), "end takes 2 fields"},
  {"end SEQ not a number", L("end x 1"), "SEQ is not"},
  {"end COUNT not a number", L("end 1 x"), "COUNT is not"},
  {"end COUNT negative", L("end 1 -1"), "COUNT is not"},
  {"end COUNT 2^64", L("end 1 18446744073709551616"), "COUNT is not"},

  {"derive without fields", L("derive"), "1 to 8 VALUEs"},
  {"derive without VALUE", L("derive tcp t x"), "1 to 8 VALUEs"},
  {"derive with 9 values", L("derive tcp t x 1 2 3 4 5 6 7 8 9"),
   "1 to 8 VALUEs"},
  {"derive with a bad second value", L("derive tcp t x 1 -2"),
   "derive: VALUE"},
  {"gauge with a bad last value", L("gauge tcp t x 1 2 3 4 5 6 7 z"),
   "gauge: VALUE"},
  {"derive with a tab between fields", L("derive tcp\tt x 1"),
   "1 to 8 VALUEs"},
  {"derive negative", L("derive tcp t x -1"), "derive: VALUE"},
  {"derive with '+'", L("derive tcp t x +1"), "derive: VALUE"},
  {"derive decimal", L("derive tcp t x 1.5"), "derive: VALUE"},
  {"derive exponent", L("derive tcp t x 1e3"), "derive: VALUE"},
  {"derive hex", L("derive tcp t x 0x10"), "derive: VALUE"},
  {"derive nan", L("derive tcp t x nan"), "derive: VALUE"},
  {"derive 2^63", L("derive tcp t x 9223372036854775808"), "derive: VALUE"},
  {"derive 2^64-1", L("derive tcp t x 18446744073709551615"),
   "derive: VALUE"},
  {"derive 2^64", L("derive tcp t x 18446744073709551616"), "derive: VALUE"},
  {"derive 21 digits", L("derive tcp t x 123456789012345678901"),
   "derive: VALUE"},
  {"derive 26 digits", L("derive tcp t x 99999999999999999999999999"),
   "derive: VALUE"},
  {"plugin instance with '/'", L("derive tcp/x t x 1"), "character outside"},
  {"type with '/'", L("derive tcp t/y x 1"), "character outside"},
  {"type instance with '/'", L("derive tcp t x/y 1"), "character outside"},
  {"name with a quote", L("derive tcp t x\"y 1"), "character outside"},
  {"name with '='", L("derive tcp t x=y 1"), "character outside"},
  {"name with '*'", L("derive tcp t x*y 1"), "character outside"},
  {"name with a control character", L("derive tcp t x\x01 1"),
   "character outside"},
  {"name with a CR", L("derive tcp t x\ry 1"), "character outside"},
  {"name with non-ASCII", L("derive tcp t caf\xc3\xa9 1"),
   "character outside"},

  {"gauge without VALUE", L("gauge tcp t x"), "1 to 8 VALUEs"},
  {"gauge inf", L("gauge tcp t x inf"), "gauge: VALUE"},
  {"gauge -inf", L("gauge tcp t x -inf"), "gauge: VALUE"},
  {"gauge Infinity", L("gauge tcp t x Infinity"), "gauge: VALUE"},
  {"gauge hex", L("gauge tcp t x 0x10"), "gauge: VALUE"},
  {"gauge hex float", L("gauge tcp t x 0x1p3"), "gauge: VALUE"},
  {"gauge overflowing", L("gauge tcp t x 1e999"), "gauge: VALUE"},
  {"gauge overflowing negative", L("gauge tcp t x -1e999"), "gauge: VALUE"},
  {"gauge -nan", L("gauge tcp t x -nan"), "gauge: VALUE"},
  {"gauge nan with junk", L("gauge tcp t x nan1"), "gauge: VALUE"},
  {"gauge letters", L("gauge tcp t x abc"), "gauge: VALUE"},
  {"gauge two dots", L("gauge tcp t x 1.2.3"), "gauge: VALUE"},
  {"gauge decimal comma", L("gauge tcp t x 1,5"), "gauge: VALUE"},
  {"gauge lone exponent", L("gauge tcp t x 1e"), "gauge: VALUE"},
  {"gauge lone dot", L("gauge tcp t x ."), "gauge: VALUE"},
  {"gauge lone minus", L("gauge tcp t x -"), "gauge: VALUE"},
  {"gauge 64 characters",
   L("gauge tcp t x 1.00000000000000000000000000000000000000000000000000000000000000"),
   "gauge: VALUE"},

  {"notify without fields", L("notify"), "notify takes"},
  {"notify with severity only", L("notify okay"), "notify takes"},
  {"notify without message", L("notify okay tcp t x"), "notify takes"},
  {"notify with only spaces as message", L("notify okay tcp t x   "),
   "notify takes"},
  {"notify severity error", L("notify error tcp t x msg"), "SEVERITY"},
  {"notify severity in capitals", L("notify WARNING tcp t x msg"),
   "SEVERITY"},
  {"notify severity ok", L("notify ok tcp t x msg"), "SEVERITY"},
  {"notify bad plugin instance", L("notify okay tcp/x t x msg"),
   "character outside"},
  {"notify bad type instance", L("notify okay tcp t x! msg"),
   "character outside"},
};
/* clang-format on */

/* An exact-size copy: reading past len is a heap overflow. */
static char *exact_copy(const char *line, size_t len) {
  char *p = malloc(len ? len : 1);
  assert_non_null(p);
  memcpy(p, line, len);
  return p;
}

static void assert_record_equal(const struct record *got,
                                const struct record *want) {
  assert_int_equal(got->kind, want->kind);
  assert_int_equal(got->version, want->version);
  assert_string_equal(got->group, want->group);
  assert_int_equal(got->seq, want->seq);
  assert_int_equal(got->count, want->count);
  assert_string_equal(got->plugin_instance, want->plugin_instance);
  assert_string_equal(got->type, want->type);
  assert_string_equal(got->type_instance, want->type_instance);
  assert_int_equal(got->nvalues, want->nvalues);
  for (size_t i = 0; i < want->nvalues; i++) {
    assert_int_equal(got->derive[i], want->derive[i]);
    if (isnan(want->gauge[i]))
      assert_true(isnan(got->gauge[i]));
    else
      assert_true(got->gauge[i] == want->gauge[i]);
  }
  assert_int_equal(got->severity, want->severity);
  assert_string_equal(got->text, want->text);
}

static void run_valid(void **state) {
  const struct valid_case *c = *state;
  char *line = exact_copy(c->line, c->len);
  struct record r;
  const char *why = "not set";
  memset(&r, 0xa5, sizeof(r)); /* every field must be written */
  int rc = record_parse(line, c->len, &r, &why);
  free(line);
  if (rc != 0)
    fail_msg("\"%s\" refused: %s", c->name, why);
  assert_null(why);
  assert_record_equal(&r, &c->want);
}

static void run_invalid(void **state) {
  const struct invalid_case *c = *state;
  char *line = exact_copy(c->line, c->len);
  struct record r;
  const char *why = NULL;
  int rc = record_parse(line, c->len, &r, &why);
  free(line);
  assert_int_equal(rc, -1);
  assert_non_null(why);
  if (strstr(why, c->why) == NULL)
    fail_msg("refused for \"%s\", expected a reason containing \"%s\"", why,
             c->why);
}

/* ---- Cases built at run time ------------------------------------------- */

static int parse(const char *line, struct record *r, const char **why) {
  size_t len = strlen(line);
  char *copy = exact_copy(line, len);
  int rc = record_parse(copy, len, r, why);
  free(copy);
  return rc;
}

static void name_of(char *buf, size_t len, char fill) {
  memset(buf, fill, len);
  buf[len] = '\0';
}

/* 63 characters is the longest name, in every position. */
static void test_names_of_63_accepted(void **state) {
  (void)state;
  char n[64], line[512];
  struct record r;
  const char *why;
  name_of(n, 63, 'a');

  snprintf(line, sizeof(line), "hello 1 %s", n);
  assert_int_equal(parse(line, &r, &why), 0);
  assert_string_equal(r.group, n);

  snprintf(line, sizeof(line), "derive %s %s %s 1", n, n, n);
  assert_int_equal(parse(line, &r, &why), 0);
  assert_string_equal(r.plugin_instance, n);
  assert_string_equal(r.type, n);
  assert_string_equal(r.type_instance, n);

  snprintf(line, sizeof(line), "notify okay %s %s %s msg", n, n, n);
  assert_int_equal(parse(line, &r, &why), 0);
  assert_string_equal(r.type_instance, n);
}

static void test_names_of_64_refused(void **state) {
  (void)state;
  char n[65], line[512];
  struct record r;
  const char *why;
  name_of(n, 64, 'b');
  const char *formats[] = {
      "hello 1 %s",
      "derive %s t x 1",
      "derive tcp %s x 1",
      "derive tcp t %s 1",
      "gauge tcp t %s 1",
      "notify okay %s t x m",
      "notify okay tcp %s x m",
      "notify okay tcp t %s m",
  };
  for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
    snprintf(line, sizeof(line), formats[i], n);
    why = NULL;
    if (parse(line, &r, &why) != -1)
      fail_msg("accepted a 64-character name: %s", line);
    assert_non_null(strstr(why, "longer than 63"));
  }
}

static void fill_line(char *buf, const char *prefix, size_t total, char fill) {
  size_t p = strlen(prefix);
  memcpy(buf, prefix, p);
  memset(buf + p, fill, total - p);
  buf[total] = '\0';
}

static void test_line_of_1023_accepted(void **state) {
  (void)state;
  char line[1100];
  struct record r;
  const char *why;
  fill_line(line, "info ", 1023, 'x');
  assert_int_equal(parse(line, &r, &why), 0);
  assert_int_equal(r.kind, RECORD_INFO);
  assert_int_equal(strlen(r.text), 255); /* truncated, see below */
}

static void test_overlong_lines_refused(void **state) {
  (void)state;
  char line[2100];
  struct record r;
  const char *why;
  fill_line(line, "info ", 1024, 'x');
  assert_int_equal(parse(line, &r, &why), -1);
  assert_non_null(strstr(why, "longer than 1023"));

  /* The CR of a CR LF counts: it is before the newline. */
  fill_line(line, "info ", 1023, 'x');
  strcat(line, "\r");
  assert_int_equal(parse(line, &r, &why), -1);
  assert_non_null(strstr(why, "longer than 1023"));

  fill_line(line, "begin ", 2000, '1');
  assert_int_equal(parse(line, &r, &why), -1);
  assert_non_null(strstr(why, "longer than 1023"));
}

/* collectd keeps 255 bytes of a message; so does the parser. */
static void test_message_truncated_to_255(void **state) {
  (void)state;
  char line[600], msg[300];
  struct record r;
  const char *why;
  const size_t lengths[] = {254, 255, 256, 299};
  for (size_t i = 0; i < ARRAY_SIZE(lengths); i++) {
    size_t n = lengths[i];
    name_of(msg, n, 'm');
    msg[n - 1] = 'z'; /* a truncated message loses the z */
    snprintf(line, sizeof(line), "notify warning tcp t x %s", msg);
    assert_int_equal(parse(line, &r, &why), 0);
    size_t kept = n < 255 ? n : 255;
    assert_int_equal(strlen(r.text), kept);
    assert_memory_equal(r.text, msg, kept);

    snprintf(line, sizeof(line), "info %s", msg);
    assert_int_equal(parse(line, &r, &why), 0);
    assert_int_equal(strlen(r.text), kept);
    assert_memory_equal(r.text, msg, kept);
  }
}

static void test_every_control_character_replaced(void **state) {
  (void)state;
  char line[64];
  struct record r;
  const char *why;
  for (int c = 1; c < 0x80; c++) {
    if (c == ' ')
      continue; /* a separator, kept as it is */
    snprintf(line, sizeof(line), "info a%cb", c);
    assert_int_equal(parse(line, &r, &why), 0);
    char want[4] = {'a', (c < 0x20 || c == 0x7f) ? '?' : (char)c, 'b', '\0'};
    assert_string_equal(r.text, want);
  }
}

static void test_record_in_batch(void **state) {
  (void)state;
  assert_true(record_in_batch(RECORD_DERIVE));
  assert_true(record_in_batch(RECORD_GAUGE));
  assert_true(record_in_batch(RECORD_NOTIFY));
  assert_false(record_in_batch(RECORD_HELLO));
  assert_false(record_in_batch(RECORD_INFO));
  assert_false(record_in_batch(RECORD_BEGIN));
  assert_false(record_in_batch(RECORD_END));
}

/* Untrusted text for the log: printable ASCII as is, a backslash doubled,
 * any other byte \xNN; never an escape cut in half. */
static void test_escape(void **state) {
  (void)state;
  char out[64];
  const char in[] = "a\x1b[31m\\b\x01\x7f\xc3\xa9\n";
  assert_int_equal(record_escape(in, sizeof(in) - 1, out, sizeof(out)), 32);
  assert_string_equal(out, "a\\x1b[31m\\\\b\\x01\\x7f\\xc3\\xa9\\x0a");
  /* A NUL inside the length is a byte like any other. */
  assert_int_equal(record_escape("a\0b", 3, out, sizeof(out)), 6);
  assert_string_equal(out, "a\\x00b");
  /* Room for "ab" and half of "\x01": the escape is left out whole. */
  assert_int_equal(record_escape("ab\x01", 3, out, 5), 2);
  assert_string_equal(out, "ab");
  assert_int_equal(record_escape("abc", 3, out, 1), 0);
  assert_string_equal(out, "");
  /* Every byte value comes out printable. */
  char all[256], big[1100];
  for (int i = 0; i < 256; i++)
    all[i] = (char)i;
  record_escape(all, sizeof(all), big, sizeof(big));
  for (const char *p = big; *p; p++)
    assert_true(*p >= 0x20 && *p < 0x7f);
}

static const struct CMUnitTest fixed_tests[] = {
    cmocka_unit_test(test_names_of_63_accepted),
    cmocka_unit_test(test_names_of_64_refused),
    cmocka_unit_test(test_line_of_1023_accepted),
    cmocka_unit_test(test_overlong_lines_refused),
    cmocka_unit_test(test_message_truncated_to_255),
    cmocka_unit_test(test_every_control_character_replaced),
    cmocka_unit_test(test_record_in_batch),
    cmocka_unit_test(test_escape),
};

static struct CMUnitTest
    tests[ARRAY_SIZE(valid) + ARRAY_SIZE(invalid) + ARRAY_SIZE(fixed_tests)];

int main(void) {
  size_t n = 0;
  for (size_t i = 0; i < ARRAY_SIZE(valid); i++)
    tests[n++] = (struct CMUnitTest){.name = valid[i].name,
                                     .test_func = run_valid,
                                     .initial_state = (void *)&valid[i]};
  for (size_t i = 0; i < ARRAY_SIZE(invalid); i++)
    tests[n++] = (struct CMUnitTest){.name = invalid[i].name,
                                     .test_func = run_invalid,
                                     .initial_state = (void *)&invalid[i]};
  for (size_t i = 0; i < ARRAY_SIZE(fixed_tests); i++)
    tests[n++] = fixed_tests[i];
  unit_filter_from_env();
  return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
