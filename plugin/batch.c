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
  free(b->series_slots);
  b->series_slots = NULL;
  b->series_cap = 0;
}

static void taint(struct batch *b, const char *why) {
  if (!b->tainted) {
    b->tainted = true;
    b->taint_why = why;
  }
}

/* The types of the plugin's own health series (stap.c dispatches them per
 * group): a module printing them would overwrite what the plugin says about
 * it. A module reports its own health as type stap_module. NULL if allowed. */
static const char *reserved_type(const char *type) {
  if (strcmp(type, "stap_running") == 0)
    return "type stap_running is the plugin's own health series; a module "
           "reports its health as type stap_module";
  if (strcmp(type, "stap_events") == 0)
    return "type stap_events is the plugin's own health series; a module "
           "reports its health as type stap_module";
  return NULL;
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

static uint64_t hash_name(uint64_t h, const char *s) {
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL; /* FNV-1a */
  }
  h ^= 0xff; /* an end mark no name holds: ("ab", "c") != ("a", "bc") */
  return h * 1099511628211ULL;
}

static uint64_t hash_series(const struct record *r) {
  uint64_t h = 1469598103934665603ULL;
  h = hash_name(h, r->plugin_instance);
  h = hash_name(h, r->type);
  return hash_name(h, r->type_instance);
}

static bool same_series(const struct record *a, const struct record *b) {
  return strcmp(a->type_instance, b->type_instance) == 0 &&
         strcmp(a->type, b->type) == 0 &&
         strcmp(a->plugin_instance, b->plugin_instance) == 0;
}

/* Finds a value record whose series (plugin instance, type, type instance:
 * collectd's identifier, whatever the kind) an earlier one of the batch
 * already named. collectd would refuse the second value as too old, and
 * which of the two is right nobody knows. Sets *dup to the second record,
 * or NULL. Returns -1 when out of memory. */
static int find_duplicate(struct batch *b, const struct record **dup) {
  *dup = NULL;
  size_t nslots = 16;
  while (nslots < 2 * b->n)
    nslots *= 2;
  if (nslots > b->series_cap) {
    uint32_t *p = realloc(b->series_slots, nslots * sizeof(*p));
    if (p == NULL)
      return -1;
    b->series_slots = p;
    b->series_cap = nslots;
  }
  uint32_t *slots = b->series_slots;
  memset(slots, 0, nslots * sizeof(*slots));
  size_t mask = nslots - 1;
  for (size_t i = 0; i < b->n; i++) {
    const struct record *r = &b->records[i];
    if (r->kind == RECORD_NOTIFY)
      continue;
    size_t k = (size_t)hash_series(r) & mask;
    for (; slots[k] != 0; k = (k + 1) & mask) {
      if (same_series(&b->records[slots[k] - 1], r)) {
        *dup = r;
        return 0;
      }
    }
    slots[k] = (uint32_t)i + 1;
  }
  return 0;
}

static void open_batch(struct batch *b, uint64_t seq) {
  b->open = true;
  b->tainted = false;
  b->taint_why = NULL;
  b->seq = seq;
  b->n = 0;
}

/* A hello starts the session of a staprun run. A second one in the same run
 * is refused and starts nothing: a module does not restart its counters
 * without being reloaded, so taking it as a new session would fold the
 * counters' values into their offsets and show a spike. */
static void feed_hello(struct batch *b, const struct record *r,
                       struct batch_result *res) {
  if (b->in_session || b->hello_refused) {
    if (b->open)
      taint(b, "it contained a bad line");
    res->event = BATCH_BAD_LINE;
    res->why = "a second hello in one staprun run; it starts no new session";
    return;
  }
  if (r->version != RECORD_PROTOCOL_VERSION ||
      strcmp(r->group, b->group) != 0) {
    b->hello_refused = true;
    res->event = BATCH_REFUSED;
    res->version = r->version;
    memcpy(res->group, r->group, sizeof(res->group));
    res->why = r->version != RECORD_PROTOCOL_VERSION
                   ? "protocol version mismatch"
                   : "module is for another group";
    return;
  }
  b->in_session = true;
  b->have_last = false;
  res->event = BATCH_HELLO;
}

/* The end of a batch whose SEQ matched: is it complete and consistent? */
static void feed_end(struct batch *b, const struct record *r,
                     struct batch_result *res) {
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
  const struct record *dup;
  if (find_duplicate(b, &dup) != 0) {
    res->event = BATCH_DISCARDED;
    res->why = "out of memory";
    return;
  }
  if (dup != NULL) {
    res->event = BATCH_DISCARDED;
    res->why = "it names one series twice";
    res->record = dup;
    return;
  }
  uint64_t expected = b->have_last ? b->last_seq + 1 : 1;
  res->gaps = b->seq > expected ? b->seq - expected : 0;
  b->have_last = true;
  b->last_seq = b->seq;
  res->event = BATCH_COMPLETE;
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
    feed_hello(b, r, res);
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
    feed_end(b, r, res);
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
    if ((res->why = reserved_type(r->type)) != NULL) {
      taint(b, "it contained a bad line");
      res->event = BATCH_BAD_LINE;
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
  b->hello_refused = false;
  b->have_last = false;
  b->n = 0;
  return was_open;
}
