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

static bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
         c == '+' || c == ',' || c == '-';
}

static int copy_name(const char *s, size_t len, char *dst, bool dash_is_empty,
                     const char **why) {
  if (len == 0 || len >= RECORD_NAME_SIZE) {
    *why = "name longer than 63 characters";
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    if (!name_char(s[i])) {
      *why = "name has a character outside [A-Za-z0-9_.:+,-]";
      return -1;
    }
  }
  if (dash_is_empty && len == 1 && s[0] == '-') {
    dst[0] = '\0';
    return 0;
  }
  memcpy(dst, s, len);
  dst[len] = '\0';
  return 0;
}

/* Copies free text, replacing control characters so a log line stays one
 * line; truncates to what collectd can keep. */
static void copy_text(const char *s, size_t len, char *dst, size_t size) {
  if (len >= size)
    len = size - 1;
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

static int parse_names(const struct fields *f, size_t first, struct record *r,
                       const char **why) {
  if (copy_name(f->start[first], f->len[first], r->plugin_instance, false,
                why) != 0 ||
      copy_name(f->start[first + 1], f->len[first + 1], r->type, false, why) !=
          0 ||
      copy_name(f->start[first + 2], f->len[first + 2], r->type_instance, true,
                why) != 0)
    return -1;
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

int record_parse(const char *line, size_t len, struct record *r,
                 const char **why) {
  struct fields f;
  *why = NULL;
  memset(r, 0, sizeof(*r));

  if (len > RECORD_LINE_MAX) {
    *why = "line longer than 1023 bytes";
    return -1;
  }
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

  if (field_is(&f, 0, "hello")) {
    split(line, len, 3, &f);
    if (f.n != 3 || f.rest_len != 0) {
      *why = "hello takes 2 fields: VERSION GROUP";
      return -1;
    }
    uint64_t v;
    if (parse_u64(f.start[1], f.len[1], &v) != 0 || v > 1000000) {
      *why = "hello: VERSION is not a number";
      return -1;
    }
    r->kind = RECORD_HELLO;
    r->version = (unsigned long)v;
    return copy_name(f.start[2], f.len[2], r->group, false, why);
  }
  if (field_is(&f, 0, "info")) {
    r->kind = RECORD_INFO;
    copy_text(f.rest, f.rest_len, r->text, sizeof(r->text));
    return 0;
  }
  if (field_is(&f, 0, "begin") || field_is(&f, 0, "end")) {
    bool begin = field_is(&f, 0, "begin");
    size_t want = begin ? 2 : 3;
    split(line, len, want, &f);
    if (f.n != want || f.rest_len != 0) {
      *why =
          begin ? "begin takes 1 field: SEQ" : "end takes 2 fields: SEQ COUNT";
      return -1;
    }
    if (parse_u64(f.start[1], f.len[1], &r->seq) != 0) {
      *why = "SEQ is not an unsigned decimal number";
      return -1;
    }
    if (!begin && parse_u64(f.start[2], f.len[2], &r->count) != 0) {
      *why = "end: COUNT is not an unsigned decimal number";
      return -1;
    }
    r->kind = begin ? RECORD_BEGIN : RECORD_END;
    return 0;
  }
  if (field_is(&f, 0, "derive") || field_is(&f, 0, "gauge")) {
    bool derive = field_is(&f, 0, "derive");
    split(line, len, 4 + RECORD_MAX_VALUES + 1, &f);
    if (f.n < 5 || f.n > 4 + RECORD_MAX_VALUES) {
      *why = "derive and gauge take PINST TYPE TINST and 1 to 8 VALUEs";
      return -1;
    }
    if (parse_names(&f, 1, r, why) != 0)
      return -1;
    r->kind = derive ? RECORD_DERIVE : RECORD_GAUGE;
    r->nvalues = f.n - 4;
    for (size_t i = 0; i < r->nvalues; i++) {
      if (derive) {
        uint64_t v;
        if (parse_u64(f.start[4 + i], f.len[4 + i], &v) != 0 || v > INT64_MAX) {
          *why = "derive: VALUE is not an integer between 0 and 2^63-1";
          return -1;
        }
        r->derive[i] = (int64_t)v;
      } else if (parse_double(f.start[4 + i], f.len[4 + i], &r->gauge[i]) !=
                 0) {
        *why = "gauge: VALUE is not a finite decimal number or nan";
        return -1;
      }
    }
    return 0;
  }
  if (field_is(&f, 0, "notify")) {
    split(line, len, 5, &f);
    if (f.n != 5 || f.rest_len == 0) {
      *why = "notify takes SEVERITY PINST TYPE TINST MESSAGE";
      return -1;
    }
    if (parse_severity(&f, 1, &r->severity) != 0) {
      *why = "notify: SEVERITY is not failure, warning or okay";
      return -1;
    }
    if (parse_names(&f, 2, r, why) != 0)
      return -1;
    r->kind = RECORD_NOTIFY;
    copy_text(f.rest, f.rest_len, r->text, sizeof(r->text));
    return 0;
  }
  *why = "unknown record type";
  return -1;
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
