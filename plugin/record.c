/* Parses one line of the record protocol. Everything here treats the line as
 * hostile: a module can be wrong, old, or not ours at all. */
#include "record.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS (4 + RECORD_MAX_VALUES + 1)

struct fields {
  const char *start[MAX_FIELDS];
  size_t len[MAX_FIELDS];
  size_t n;
  /* Where the field after the last split one begins: the free text of info
   * and notify. */
  const char *rest;
  size_t rest_len;
};

/* Splits off at most `want` space-separated fields; what follows is `rest`. */
static void split(const char *p, size_t len, size_t want, struct fields *f) {
  const char *end = p + len;
  f->n = 0;
  while (f->n < want) {
    while (p < end && *p == ' ')
      p++;
    if (p == end)
      break;
    const char *s = p;
    while (p < end && *p != ' ')
      p++;
    f->start[f->n] = s;
    f->len[f->n] = (size_t)(p - s);
    f->n++;
  }
  while (p < end && *p == ' ')
    p++;
  f->rest = p;
  f->rest_len = (size_t)(end - p);
}

static bool field_is(const struct fields *f, size_t i, const char *word) {
  size_t n = strlen(word);
  return f->len[i] == n && memcmp(f->start[i], word, n) == 0;
}

/* The bytes a name may hold: [A-Za-z0-9_.:+,-]. A table, as this runs for
 * every byte of every name. */
static const unsigned char name_chars[256] = {
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1,
    ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['_'] = 1,
    ['.'] = 1, [':'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1,
};

static int check_name(const char *s, size_t len, const char **why) {
  if (len == 0 || len >= RECORD_NAME_SIZE) {
    *why = "name longer than 63 characters";
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    if (!name_chars[(unsigned char)s[i]]) {
      *why = "name has a character outside [A-Za-z0-9_.:+,-]";
      return -1;
    }
  }
  return 0;
}

void record_text(const char *s, size_t len, char *dst) {
  if (len >= RECORD_TEXT_SIZE)
    len = RECORD_TEXT_SIZE - 1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  dst[len] = '\0';
}

static int parse_u64(const char *s, size_t len, uint64_t *out) {
  if (len == 0 || len > 20)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int parse_double(const char *s, size_t len, double *out) {
  char buf[64];
  if (len == 0 || len >= sizeof(buf))
    return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  /* strtod also takes hex and "infinity"; a module prints plain decimals or
   * nan, so refuse what it would never print. */
  for (size_t i = 0; i < len; i++) {
    char c = buf[i];
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E' || c == 'n' || c == 'a' || c == 'N' || c == 'A'))
      return -1;
  }
  if (strcmp(buf, "nan") == 0 || strcmp(buf, "NaN") == 0) {
    *out = NAN;
    return 0;
  }
  char *end = NULL;
  errno = 0;
  double v = strtod(buf, &end);
  if (errno != 0 || end != buf + len || !isfinite(v))
    return -1;
  *out = v;
  return 0;
}

/* PINST TYPE TINST from fields first.., a lone "-" as TINST being empty. */
static int scan_names(const struct fields *f, size_t first,
                      struct record_view *v, const char **why) {
  for (size_t k = 0; k < 3; k++) {
    if (check_name(f->start[first + k], f->len[first + k], why) != 0)
      return -1;
    v->name[k] = f->start[first + k];
    v->len[k] = f->len[first + k];
  }
  if (v->len[2] == 1 && v->name[2][0] == '-')
    v->len[2] = 0;
  return 0;
}

static int parse_severity(const struct fields *f, size_t i,
                          enum record_severity *s) {
  if (field_is(f, i, "failure"))
    *s = RECORD_FAILURE;
  else if (field_is(f, i, "warning"))
    *s = RECORD_WARNING;
  else if (field_is(f, i, "okay"))
    *s = RECORD_OKAY;
  else
    return -1;
  return 0;
}

static int scan_hello(const char *line, size_t len, struct record_view *v,
                      const char **why) {
  struct fields f;
  split(line, len, 3, &f);
  if (f.n != 3 || f.rest_len != 0) {
    *why = "hello takes 2 fields: VERSION GROUP";
    return -1;
  }
  uint64_t ver;
  if (parse_u64(f.start[1], f.len[1], &ver) != 0 || ver > 1000000) {
    *why = "hello: VERSION is not a number";
    return -1;
  }
  v->kind = RECORD_HELLO;
  v->version = (unsigned long)ver;
  v->name[0] = f.start[2];
  v->len[0] = f.len[2];
  return check_name(f.start[2], f.len[2], why);
}

static int scan_begin_end(const char *line, size_t len, bool begin,
                          struct record_view *v, const char **why) {
  struct fields f;
  size_t want = begin ? 2 : 3;
  split(line, len, want, &f);
  if (f.n != want || f.rest_len != 0) {
    *why = begin ? "begin takes 1 field: SEQ" : "end takes 2 fields: SEQ COUNT";
    return -1;
  }
  if (parse_u64(f.start[1], f.len[1], &v->seq) != 0) {
    *why = "SEQ is not an unsigned decimal number";
    return -1;
  }
  if (!begin && parse_u64(f.start[2], f.len[2], &v->count) != 0) {
    *why = "end: COUNT is not an unsigned decimal number";
    return -1;
  }
  v->kind = begin ? RECORD_BEGIN : RECORD_END;
  return 0;
}

static int scan_value(const char *line, size_t len, bool derive,
                      struct record_view *v, const char **why) {
  struct fields f;
  split(line, len, 4 + RECORD_MAX_VALUES + 1, &f);
  if (f.n < 5 || f.n > 4 + RECORD_MAX_VALUES) {
    *why = "derive and gauge take PINST TYPE TINST and 1 to 8 VALUEs";
    return -1;
  }
  if (scan_names(&f, 1, v, why) != 0)
    return -1;
  v->kind = derive ? RECORD_DERIVE : RECORD_GAUGE;
  v->nvalues = f.n - 4;
  for (size_t i = 0; i < v->nvalues; i++) {
    if (derive) {
      uint64_t x;
      if (parse_u64(f.start[4 + i], f.len[4 + i], &x) != 0 || x > INT64_MAX) {
        *why = "derive: VALUE is not an integer between 0 and 2^63-1";
        return -1;
      }
      v->derive[i] = (int64_t)x;
    } else if (parse_double(f.start[4 + i], f.len[4 + i], &v->gauge[i]) != 0) {
      *why = "gauge: VALUE is not a finite decimal number or nan";
      return -1;
    }
  }
  return 0;
}

static int scan_notify(const char *line, size_t len, struct record_view *v,
                       const char **why) {
  struct fields f;
  split(line, len, 5, &f);
  if (f.n != 5 || f.rest_len == 0) {
    *why = "notify takes SEVERITY PINST TYPE TINST MESSAGE";
    return -1;
  }
  if (parse_severity(&f, 1, &v->severity) != 0) {
    *why = "notify: SEVERITY is not failure, warning or okay";
    return -1;
  }
  if (scan_names(&f, 2, v, why) != 0)
    return -1;
  v->kind = RECORD_NOTIFY;
  v->text = f.rest;
  v->text_len = f.rest_len;
  return 0;
}

/* A derive VALUE: 1 to 20 digits, at most 2^63-1. */
static const char *fast_derive(const char *p, const char *end, int64_t *out) {
  const char *s = p;
  uint64_t x = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (x > ((uint64_t)INT64_MAX - d) / 10)
      return NULL;
    x = x * 10 + d;
  }
  *out = (int64_t)x;
  return p > s && p - s <= 20 ? p : NULL;
}

/* The line nearly every module line is: derive or gauge as modules print
 * it (single spaces, no trailing space), taken in one pass over its bytes
 * instead of splitting it first and checking each field after. Returns 0
 * with *v filled, or 1 to leave the line to the general parser, which
 * accepts exactly what this does and more, and explains what it refuses:
 * anything unusual goes there (a NUL byte, for one, is no name or value
 * byte). */
static int scan_value_fast(const char *line, size_t len,
                           struct record_view *v) {
  const char *p = line, *end = line + len;
  bool derive = len > 7 && memcmp(p, "derive ", 7) == 0;
  if (!derive && !(len > 6 && memcmp(p, "gauge ", 6) == 0))
    return 1;
  p += derive ? 7 : 6;
  for (int k = 0; k < 3; k++) {
    const char *s = p;
    while (p < end && name_chars[(unsigned char)*p])
      p++;
    if (p == s || p - s >= RECORD_NAME_SIZE || p == end || *p != ' ')
      return 1;
    v->name[k] = s;
    v->len[k] = (size_t)(p - s);
    p++;
  }
  if (v->len[2] == 1 && v->name[2][0] == '-')
    v->len[2] = 0;
  size_t n = 0;
  for (;; p++) {
    if (n == RECORD_MAX_VALUES)
      return 1;
    if (derive) {
      p = fast_derive(p, end, &v->derive[n]);
    } else {
      const char *s = p;
      p = memchr(s, ' ', (size_t)(end - s));
      if (p == NULL)
        p = end;
      if (parse_double(s, (size_t)(p - s), &v->gauge[n]) != 0)
        return 1;
    }
    if (p == NULL)
      return 1;
    n++;
    if (p == end)
      break;
    if (*p != ' ' || p + 1 == end)
      return 1;
  }
  v->kind = derive ? RECORD_DERIVE : RECORD_GAUGE;
  v->nvalues = n;
  return 0;
}

int record_scan(const char *line, size_t len, struct record_view *v,
                const char **why) {
  struct fields f;
  *why = NULL;
  if (len > RECORD_LINE_MAX) {
    *why = "line longer than 1023 bytes";
    return -1;
  }
  size_t n = len > 0 && line[len - 1] == '\r' ? len - 1 : len;
  if (scan_value_fast(line, n, v) == 0)
    return 0;
  if (memchr(line, '\0', len) != NULL) {
    *why = "line contains a NUL byte";
    return -1;
  }
  /* Tolerate a CR before the newline; nothing else. */
  if (len > 0 && line[len - 1] == '\r')
    len--;

  split(line, len, 1, &f);
  if (f.n == 0) {
    *why = "empty line";
    return -1;
  }
  /* Values first: nearly every line is one. */
  if (field_is(&f, 0, "derive") || field_is(&f, 0, "gauge"))
    return scan_value(line, len, f.len[0] == 6, v, why);
  if (field_is(&f, 0, "begin") || field_is(&f, 0, "end"))
    return scan_begin_end(line, len, f.len[0] == 5, v, why);
  if (field_is(&f, 0, "notify"))
    return scan_notify(line, len, v, why);
  if (field_is(&f, 0, "hello"))
    return scan_hello(line, len, v, why);
  if (field_is(&f, 0, "info")) {
    v->kind = RECORD_INFO;
    v->text = f.rest;
    v->text_len = f.rest_len;
    return 0;
  }
  *why = "unknown record type";
  return -1;
}

static void copy_name(const char *s, size_t len, char *dst) {
  memcpy(dst, s, len);
  dst[len] = '\0';
}

int record_parse(const char *line, size_t len, struct record *r,
                 const char **why) {
  struct record_view v;
  memset(r, 0, sizeof(*r));
  if (record_scan(line, len, &v, why) != 0)
    return -1;
  r->kind = v.kind;
  switch (v.kind) {
  case RECORD_HELLO:
    r->version = v.version;
    copy_name(v.name[0], v.len[0], r->group);
    break;
  case RECORD_BEGIN:
    r->seq = v.seq;
    break;
  case RECORD_END:
    r->seq = v.seq;
    r->count = v.count;
    break;
  case RECORD_DERIVE:
  case RECORD_GAUGE:
  case RECORD_NOTIFY:
    copy_name(v.name[0], v.len[0], r->plugin_instance);
    copy_name(v.name[1], v.len[1], r->type);
    copy_name(v.name[2], v.len[2], r->type_instance);
    r->nvalues = v.kind == RECORD_NOTIFY ? 0 : v.nvalues;
    for (size_t i = 0; i < r->nvalues; i++) {
      if (v.kind == RECORD_DERIVE)
        r->derive[i] = v.derive[i];
      else
        r->gauge[i] = v.gauge[i];
    }
    if (v.kind == RECORD_NOTIFY) {
      r->severity = v.severity;
      record_text(v.text, v.text_len, r->text);
    }
    break;
  case RECORD_INFO:
    record_text(v.text, v.text_len, r->text);
    break;
  }
  return 0;
}

int record_in_batch(enum record_kind kind) {
  return kind == RECORD_DERIVE || kind == RECORD_GAUGE || kind == RECORD_NOTIFY;
}

size_t record_escape(const char *s, size_t len, char *dst, size_t size) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[4];
    size_t elen = 0;
    if (c == '\\') {
      esc[elen++] = '\\';
      esc[elen++] = '\\';
    } else if (c >= 0x20 && c < 0x7f) {
      esc[elen++] = (char)c;
    } else {
      esc[elen++] = '\\';
      esc[elen++] = 'x';
      esc[elen++] = hex[c >> 4];
      esc[elen++] = hex[c & 0xf];
    }
    if (n + elen >= size)
      break;
    memcpy(dst + n, esc, elen);
    n += elen;
  }
  dst[n] = '\0';
  return n;
}
