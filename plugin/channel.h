/* Reads a pipe into lines, bounded: a line longer than RECORD_LINE_MAX is
 * reported once as truncated and the rest of it skipped. */
#ifndef COLLECTD_STAP_CHANNEL_H
#define COLLECTD_STAP_CHANNEL_H

#include "record.h"

#include <stdbool.h>
#include <stddef.h>

/* A line of len bytes, without its newline and not NUL-terminated (it may
 * lie in the middle of what was read). */
typedef void (*channel_line_cb)(void *ctx, const char *line, size_t len,
                                bool truncated);

/* Bytes taken per read(2): a pipe's whole buffer, so that a module's batch
 * of 4096 lines costs a few system calls, not one per 90 lines. */
#define CHANNEL_READ_SIZE 65536

struct channel {
  int fd;
  bool eof;
  bool skipping; /* inside an overlong line, waiting for its newline */
  size_t len;
  char buf[RECORD_LINE_MAX + 1];
};

void channel_init(struct channel *c, int fd);

/* Reads what is available (one read(2)) and calls cb for each complete line.
 * At end of file a last unterminated line is delivered too. Returns 0, 1 at
 * end of file, or -1 with errno set. */
int channel_read(struct channel *c, channel_line_cb cb, void *ctx);

#endif
