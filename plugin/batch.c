/* Batch assembly. A batch is all-or-nothing: dispatching half of one would
 * show graphs a moment in which some counters moved and others did not. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

int batch_init(struct batch *b, const char *group, size_t max_records) {
  memset(b, 0, sizeof(*b));
  size_t len = strlen(group);
  if (len == 0 || len >= sizeof(b->group))
    return -1;
  memcpy(b->group, group, len + 1);
  b->max_records = max_records ? max_records : BATCH_DEFAULT_MAX_RECORDS;
  return 0;
}

void batch_free(struct batch *b) {
  free(b->records);
  b->records = NULL;
  b->n = b->cap = 0;
}

static void taint(struct batch *b, const char *why) {
  if (!b->tainted) {
    b->tainted = true;
    b->taint_why = why;
  }
}

static bool instance_in_group(const struct batch *b, const char *pinst) {
  size_t g = strlen(b->group);
  return strncmp(pinst, b->group, g) == 0 &&
         (pinst[g] == '\0' || pinst[g] == '-');
}

static int append(struct batch *b, const struct record *r) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    if (cap > b->max_records)
      cap = b->max_records;
    struct record *p = realloc(b->records, cap * sizeof(*p));
    if (p == NULL)
      return -1;
    b->records = p;
    b->cap = cap;
  }
  b->records[b->n++] = *r;
  return 0;
}

static void open_batch(struct batch *b, uint64_t seq) {
  b->open = true;
  b->tainted = false;
  b->taint_why = NULL;
  b->seq = seq;
  b->n = 0;
}

void batch_feed(struct batch *b, const char *line, size_t len,
                struct batch_result *res) {
  struct record *r = &b->scratch;
  memset(res, 0, sizeof(*res));

  if (record_parse(line, len, r, &res->why) != 0) {
    if (b->open)
      taint(b, "it contained a bad line");
    res->event = BATCH_BAD_LINE;
    return;
  }

  if (r->kind == RECORD_HELLO) {
    bool was_open = b->open;
    b->open = false;
    b->have_last = false;
    if (r->version != RECORD_PROTOCOL_VERSION ||
        strcmp(r->group, b->group) != 0) {
      b->in_session = false;
      res->event = BATCH_REFUSED;
      res->version = r->version;
      memcpy(res->group, r->group, sizeof(res->group));
      res->why = r->version != RECORD_PROTOCOL_VERSION
                     ? "protocol version mismatch"
                     : "module is for another group";
      return;
    }
    b->in_session = true;
    res->event = BATCH_HELLO;
    /* A module restarted by the kernel side (rare) leaves a half batch. */
    if (was_open)
      res->why = "a new session began inside a batch";
    return;
  }

  if (!b->in_session) {
    res->event = BATCH_BAD_LINE;
    res->why = "record before a valid hello line";
    return;
  }

  switch (r->kind) {
  case RECORD_INFO:
    if (b->open) {
      taint(b, "it contained an info line");
      res->event = BATCH_BAD_LINE;
      res->why = "info inside a batch";
      return;
    }
    res->event = BATCH_INFO;
    res->record = r;
    return;

  case RECORD_BEGIN:
    if (b->open) {
      res->event = BATCH_DISCARDED;
      res->why = "a begin arrived before its end";
    } else {
      res->event = BATCH_NOTHING;
    }
    open_batch(b, r->seq);
    return;

  case RECORD_END:
    if (!b->open) {
      res->event = BATCH_BAD_LINE;
      res->why = "end without begin";
      return;
    }
    b->open = false;
    if (r->seq != b->seq) {
      res->event = BATCH_DISCARDED;
      res->why = "end SEQ differs from begin SEQ";
      return;
    }
    if (b->tainted) {
      res->event = BATCH_DISCARDED;
      res->why = b->taint_why;
      return;
    }
    if (r->count != b->n) {
      res->event = BATCH_DISCARDED;
      res->why = "end COUNT differs from the records received";
      return;
    }
    uint64_t expected = b->have_last ? b->last_seq + 1 : 1;
    res->gaps = b->seq > expected ? b->seq - expected : 0;
    b->have_last = true;
    b->last_seq = b->seq;
    res->event = BATCH_COMPLETE;
    return;

  case RECORD_DERIVE:
  case RECORD_GAUGE:
  case RECORD_NOTIFY:
    if (!b->open) {
      res->event = BATCH_BAD_LINE;
      res->why = "value or notification outside a batch";
      return;
    }
    if (!instance_in_group(b, r->plugin_instance)) {
      taint(b, "it contained a bad line");
      res->event = BATCH_BAD_LINE;
      res->why = "plugin instance is not the group or GROUP-...";
      return;
    }
    if (b->n >= b->max_records) {
      taint(b, "it had more records than MaxBatchRecords");
      res->event = BATCH_NOTHING;
      return;
    }
    if (append(b, r) != 0) {
      taint(b, "out of memory");
      res->event = BATCH_NOTHING;
      return;
    }
    res->event = BATCH_NOTHING;
    return;

  case RECORD_HELLO:
    break;
  }
  res->event = BATCH_BAD_LINE;
  res->why = "unexpected record";
}

bool batch_session_end(struct batch *b) {
  bool was_open = b->open;
  b->open = false;
  b->in_session = false;
  b->have_last = false;
  b->n = 0;
  return was_open;
}
