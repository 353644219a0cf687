/* channel_read: a pipe split into bounded lines. Every test writes into a
 * real pipe and reads it through the channel, one read(2) per call. */
#include "helpers.h"

#include "plugin/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct line {
  size_t len;
  bool truncated;
  char text[RECORD_LINE_MAX + 1];
};

struct fixture {
  int fds[2]; /* read end (non-blocking, the channel's), write end */
  struct channel ch;
  size_t n;
  struct line lines[32];
};

static void collect(void *ctx, const char *line, size_t len, bool truncated) {
  struct fixture *f = ctx;
  assert_true(len <= RECORD_LINE_MAX);
  assert_true(f->n < ARRAY_SIZE(f->lines));
  struct line *l = &f->lines[f->n++];
  l->len = len;
  l->truncated = truncated;
  memcpy(l->text, line, len);
  l->text[len] = '\0';
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || pipe2(f->fds, O_CLOEXEC) != 0)
    return -1;
  fcntl(f->fds[0], F_SETFL, O_NONBLOCK);
  channel_init(&f->ch, f->fds[0]);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  close(f->fds[0]);
  if (f->fds[1] >= 0)
    close(f->fds[1]);
  free(f);
  return 0;
}

static void put(struct fixture *f, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(f->fds[1], data, len);
    assert_true(n > 0);
    data += n;
    len -= (size_t)n;
  }
}

static void put_str(struct fixture *f, const char *s) { put(f, s, strlen(s)); }

static void put_fill(struct fixture *f, char c, size_t n) {
  char *buf = malloc(n);
  assert_non_null(buf);
  memset(buf, c, n);
  put(f, buf, n);
  free(buf);
}

static void close_writer(struct fixture *f) {
  close(f->fds[1]);
  f->fds[1] = -1;
}

/* Reads until the pipe is empty, or until end of file once the writer is
 * closed; returns the last channel_read result. */
static int drain(struct fixture *f) {
  int rc, pending;
  do {
    rc = channel_read(&f->ch, collect, f);
    assert_int_not_equal(rc, -1);
    assert_int_equal(ioctl(f->fds[0], FIONREAD, &pending), 0);
  } while (rc == 0 && (pending > 0 || f->fds[1] < 0));
  return rc;
}

static void assert_line(const struct fixture *f, size_t i, const char *text) {
  assert_true(i < f->n);
  assert_false(f->lines[i].truncated);
  assert_int_equal(f->lines[i].len, strlen(text));
  assert_string_equal(f->lines[i].text, text);
}

static void assert_truncated(const struct fixture *f, size_t i, char fill) {
  assert_true(i < f->n);
  assert_true(f->lines[i].truncated);
  assert_int_equal(f->lines[i].len, RECORD_LINE_MAX);
  for (size_t k = 0; k < RECORD_LINE_MAX; k++)
    if (f->lines[i].text[k] != fill)
      fail_msg("byte %zu of the truncated line is %#x", k,
               (unsigned char)f->lines[i].text[k]);
}

static void test_line_split_across_reads(void **state) {
  struct fixture *f = *state;
  put_str(f, "beg");
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  put_str(f, "in 1");
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 0);
  put_str(f, "2\nend");
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 1);
  assert_line(f, 0, "begin 12");
  put_str(f, " 12 0\n");
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 2);
  assert_line(f, 1, "end 12 0");
}

static void test_several_lines_per_read(void **state) {
  struct fixture *f = *state;
  put_str(f, "a\nbb\nccc\ndd");
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 3);
  assert_line(f, 0, "a");
  assert_line(f, 1, "bb");
  assert_line(f, 2, "ccc");
  put_str(f, "d\n");
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 4);
  assert_line(f, 3, "ddd");
}

static void test_line_of_max_length(void **state) {
  struct fixture *f = *state;
  put_fill(f, 'm', RECORD_LINE_MAX);
  put_str(f, "\n");
  drain(f);
  assert_int_equal(f->n, 1);
  assert_false(f->lines[0].truncated);
  assert_int_equal(f->lines[0].len, RECORD_LINE_MAX);
}

static void test_line_one_byte_too_long(void **state) {
  struct fixture *f = *state;
  put_fill(f, 'x', RECORD_LINE_MAX + 1);
  put_str(f, "\nnext\n");
  drain(f);
  assert_int_equal(f->n, 2);
  assert_truncated(f, 0, 'x');
  assert_line(f, 1, "next"); /* the extra byte is not a line of its own */
}

/* Reported once, as soon as it is too long, then skipped to its newline
 * however many reads that takes. */
static void test_overlong_line_reported_once(void **state) {
  struct fixture *f = *state;
  put_str(f, "before\n");
  put_fill(f, 'x', 1000);
  drain(f);
  assert_int_equal(f->n, 1);
  put_fill(f, 'x', 500);
  drain(f);
  assert_int_equal(f->n, 2);
  assert_truncated(f, 1, 'x');
  for (int i = 0; i < 10; i++) { /* 40 kB more of the same line */
    put_fill(f, 'x', 4000);
    drain(f);
  }
  assert_int_equal(f->n, 2);
  put_str(f, "\nafter\n");
  drain(f);
  assert_int_equal(f->n, 3);
  assert_line(f, 0, "before");
  assert_line(f, 2, "after");
}

static void test_overlong_line_within_one_read(void **state) {
  struct fixture *f = *state;
  char buf[2100];
  memset(buf, 'y', 2000);
  memcpy(buf + 2000, "\nnext\n", 6);
  put(f, buf, 2006);
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 2);
  assert_truncated(f, 0, 'y');
  assert_line(f, 1, "next");
}

static void test_two_overlong_lines(void **state) {
  struct fixture *f = *state;
  put_fill(f, 'a', 3000);
  put_str(f, "\n");
  put_fill(f, 'b', 3000);
  put_str(f, "\nc\n");
  drain(f);
  assert_int_equal(f->n, 3);
  assert_truncated(f, 0, 'a');
  assert_truncated(f, 1, 'b');
  assert_line(f, 2, "c");
}

static void test_unterminated_tail_at_eof(void **state) {
  struct fixture *f = *state;
  put_str(f, "a\ntail");
  close_writer(f);
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 1);
  assert_int_equal(channel_read(&f->ch, collect, f), 1);
  assert_int_equal(f->n, 2);
  assert_line(f, 0, "a");
  assert_line(f, 1, "tail");
  assert_true(f->ch.eof);
  /* End of file stays end of file, and the tail is not delivered again. */
  assert_int_equal(channel_read(&f->ch, collect, f), 1);
  assert_int_equal(f->n, 2);
}

static void test_eof_after_complete_line(void **state) {
  struct fixture *f = *state;
  put_str(f, "a\n");
  close_writer(f);
  assert_int_equal(drain(f), 1);
  assert_int_equal(f->n, 1);
  assert_line(f, 0, "a");
}

static void test_overlong_tail_at_eof(void **state) {
  struct fixture *f = *state;
  put_fill(f, 'z', 1500);
  close_writer(f);
  assert_int_equal(drain(f), 1);
  assert_int_equal(f->n, 1); /* reported once, nothing more at the end */
  assert_truncated(f, 0, 'z');
}

static void test_empty_lines(void **state) {
  struct fixture *f = *state;
  put_str(f, "\n\nx\n\n");
  drain(f);
  assert_int_equal(f->n, 4);
  assert_line(f, 0, "");
  assert_line(f, 1, "");
  assert_line(f, 2, "x");
  assert_line(f, 3, "");
}

/* The channel only splits: a CR or a NUL is the parser's business. */
static void test_bytes_passed_through(void **state) {
  struct fixture *f = *state;
  put(f, "x\r\na\0b\n", 7);
  drain(f);
  assert_int_equal(f->n, 2);
  assert_line(f, 0, "x\r");
  assert_int_equal(f->lines[1].len, 3);
  assert_memory_equal(f->lines[1].text, "a\0b", 3);
}

static void test_nothing_to_read(void **state) {
  struct fixture *f = *state;
  assert_int_equal(channel_read(&f->ch, collect, f), 0);
  assert_int_equal(f->n, 0);
  assert_false(f->ch.eof);
}

static void test_read_error(void **state) {
  (void)state;
  struct channel ch;
  channel_init(&ch, -1);
  errno = 0;
  assert_int_equal(channel_read(&ch, collect, NULL), -1);
  assert_int_equal(errno, EBADF);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_line_split_across_reads),
      T(test_several_lines_per_read),
      T(test_line_of_max_length),
      T(test_line_one_byte_too_long),
      T(test_overlong_line_reported_once),
      T(test_overlong_line_within_one_read),
      T(test_two_overlong_lines),
      T(test_unterminated_tail_at_eof),
      T(test_eof_after_complete_line),
      T(test_overlong_tail_at_eof),
      T(test_empty_lines),
      T(test_bytes_passed_through),
      T(test_nothing_to_read),
      T(test_read_error),
  };
  unit_filter_from_env();
  return cmocka_run_group_tests_name("channel", tests, NULL, NULL);
}
