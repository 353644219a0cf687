/* Reads a module's top-flows report. The text comes from the kernel module,
 * so it is parsed as strictly as the record protocol. */
#include "flows.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static bool addr_ok(const char *s, size_t n) {
  if (n == 0 || n >= FLOWS_ADDR_SIZE)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
          (c >= 'A' && c <= 'F') || c == '.' || c == ':' || c == '[' ||
          c == ']'))
      return false;
  }
  return true;
}

static size_t next_field(const char **p, const char *end, const char **start) {
  while (*p < end && **p == ' ')
    (*p)++;
  *start = *p;
  while (*p < end && **p != ' ')
    (*p)++;
  return (size_t)(*p - *start);
}

static bool parse_line(const char *p, const char *end, struct flow *f) {
  const char *s;
  size_t n = next_field(&p, end, &s);
  if (n != 4 || memcmp(s, "flow", 4) != 0)
    return false;
  n = next_field(&p, end, &s);
  if (!addr_ok(s, n))
    return false;
  memcpy(f->local, s, n);
  f->local[n] = '\0';
  n = next_field(&p, end, &s);
  if (!addr_ok(s, n))
    return false;
  memcpy(f->remote, s, n);
  f->remote[n] = '\0';
  n = next_field(&p, end, &s);
  if (n == 0 || n > 19)
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  f->count = v;
  next_field(&p, end, &s);
  return s == end;
}

size_t flows_parse(const char *text, size_t len, struct flow *out, size_t max) {
  const char *p = text, *end = text + len;
  size_t n = 0;
  while (p < end && n < max) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end;
    if (parse_line(p, eol, &out[n]))
      n++;
    p = nl ? nl + 1 : end;
  }
  return n;
}

int flows_read(const char *path, struct flow *out, size_t max) {
  char buf[16384];
  size_t used = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  while (used < sizeof(buf)) {
    ssize_t r = read(fd, buf + used, sizeof(buf) - used);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (r == 0)
      break;
    used += (size_t)r;
  }
  close(fd);
  return (int)flows_parse(buf, used, out, max);
}
