/* The read side of staprun's stdout and stderr pipes. */
#include "channel.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void channel_init(struct channel *c, int fd) {
  memset(c, 0, sizeof(*c));
  c->fd = fd;
}

static void take(struct channel *c, const char *p, size_t n, channel_line_cb cb,
                 void *ctx) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t part = nl ? (size_t)(nl - p) : n;

    if (c->skipping) {
      if (nl)
        c->skipping = false;
    } else if (c->len + part > RECORD_LINE_MAX) {
      /* Report what we have so the caller can count it, then skip to the
       * next newline. */
      size_t room = RECORD_LINE_MAX - c->len;
      memcpy(c->buf + c->len, p, room);
      cb(ctx, c->buf, RECORD_LINE_MAX, true);
      c->len = 0;
      c->skipping = nl == NULL;
    } else if (nl && c->len == 0) {
      /* A whole line in what was read: handed over where it lies, not
       * copied (nearly every line, with reads of CHANNEL_READ_SIZE). */
      cb(ctx, p, part, false);
    } else {
      memcpy(c->buf + c->len, p, part);
      c->len += part;
      if (nl) {
        c->buf[c->len] = '\0';
        cb(ctx, c->buf, c->len, false);
        c->len = 0;
      }
    }
    if (!nl)
      return;
    p = nl + 1;
    n -= part + 1;
  }
}

int channel_read(struct channel *c, channel_line_cb cb, void *ctx) {
  char chunk[CHANNEL_READ_SIZE];
  if (c->eof)
    return 1;
  ssize_t n = read(c->fd, chunk, sizeof(chunk));
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN)
      return 0;
    return -1;
  }
  if (n == 0) {
    c->eof = true;
    if (c->len > 0 && !c->skipping) {
      c->buf[c->len] = '\0';
      cb(ctx, c->buf, c->len, false);
    }
    c->len = 0;
    return 1;
  }
  take(c, chunk, (size_t)n, cb, ctx);
  return 0;
}
