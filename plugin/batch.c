/* Batch assembly. A batch is all-or-nothing: dispatching half of one would
 * show graphs a moment in which some counters moved and others did not.
 *
 * Every line of a batch passes here, so a record is kept small: its
 * series' id in the group's table (looked up once, here) and its values.
 * Only a series the table does not hold yet keeps its name, and only a
 * notification its text. The stores keep their size from batch to batch,
 * so a steady module costs no allocation per line. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

int batch_init(struct batch *b, const char *group, size_t max_records) {
  memset(b, 0, sizeof(*b));
  size_t len = strlen(group);
  if (len == 0 || len >= sizeof(b->group))
    return -1;
  memcpy(b->group, group, len + 1);
  b->group_len = len;
  b->max_records = max_records ? max_records : BATCH_DEFAULT_MAX_RECORDS;
  b->stamp = 1;
  return 0;
}

void batch_use_series(struct batch *b, const struct offsets *o) {
  b->series = o;
}

void batch_free(struct batch *b) {
  free(b->entries);
  free(b->values);
  free(b->text);
  free(b->stamps);
  free(b->series_slots);
  b->entries = NULL;
  b->values = NULL;
  b->text = NULL;
  b->stamps = NULL;
  b->series_slots = NULL;
  b->n = b->cap = b->used = b->nvalues = b->values_cap = 0;
  b->text_len = b->text_cap = b->nstamps = b->series_cap = 0;
}

static void taint(struct batch *b, const char *why) {
  if (!b->tainted) {
    b->tainted = true;
    b->taint_why = why;
  }
}

static bool name_is(const char *s, size_t len, const char *word) {
  return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* The types of the plugin's own health series (stap.c dispatches them per
 * group): a module printing them would overwrite what the plugin says about
 * it. A module reports its own health as type stap_module. NULL if allowed. */
static const char *reserved_type(const char *type, size_t len) {
  if (name_is(type, len, "stap_running"))
    return "type stap_running is the plugin's own health series; a module "
           "reports its health as type stap_module";
  if (name_is(type, len, "stap_events"))
    return "type stap_events is the plugin's own health series; a module "
           "reports its health as type stap_module";
  return NULL;
}

static bool instance_in_group(const struct batch *b, const char *pinst,
                              size_t len) {
  size_t g = b->group_len;
  return len >= g && memcmp(pinst, b->group, g) == 0 &&
         (len == g || pinst[g] == '-');
}

/* Makes room for `more' elements of `size' bytes in *p (holding *n of
 * *cap), doubling. */
static int reserve(void **p, size_t *cap, size_t n, size_t more, size_t size) {
  if (n + more <= *cap)
    return 0;
  size_t c = *cap ? *cap : 64;
  while (c < n + more)
    c *= 2;
  void *q = realloc(*p, c * size);
  if (q == NULL)
    return -1;
  *p = q;
  *cap = c;
  return 0;
}

/* Copies len bytes and a NUL into the text store; returns the offset. */
static uint32_t keep_text(struct batch *b, const char *s, size_t len) {
  uint32_t at = (uint32_t)b->text_len;
  memcpy(b->text + b->text_len, s, len);
  b->text[b->text_len + len] = '\0';
  b->text_len += len + 1;
  return at;
}

/* Notes that record n names table series id; remembers the first record
 * naming one a second time. -1 when out of memory. */
static int stamp_series(struct batch *b, uint32_t id) {
  if (b->stamps == NULL) {
    b->stamps = calloc(offsets_capacity(b->series), sizeof(*b->stamps));
    if (b->stamps == NULL)
      return -1;
    b->nstamps = offsets_capacity(b->series);
  }
  if (b->stamps[id] == b->stamp && b->first_dup == 0)
    b->first_dup = b->n + 1;
  b->stamps[id] = b->stamp;
  return 0;
}

/* Where a record's series is, in the table or in the text store. */
static int place_series(struct batch *b, const struct record_view *v,
                        struct batch_entry *e) {
  long id = -1;
  if (b->series != NULL) {
    struct series_name n = {{v->name[0], v->name[1], v->name[2]},
                            {v->len[0], v->len[1], v->len[2]}};
    /* A module prints its series in the same order every interval: the
     * series an earlier batch had at this place (still in e) is nearly
     * always this one, and checking it costs less than a hash lookup
     * (which touches the table at a random place). */
    if (b->n < b->used && e->series != BATCH_NEW_SERIES &&
        offsets_named(b->series, e->series, &n))
      id = e->series;
    else
      id = offsets_find(b->series, &n, offsets_hash(&n));
  }
  if (id >= 0) {
    e->series = (uint32_t)id;
    /* Notifications are not series for the duplicate check. */
    return v->kind == RECORD_NOTIFY ? 0 : stamp_series(b, e->series);
  }
  e->series = BATCH_NEW_SERIES;
  e->name = keep_text(b, v->name[0], v->len[0]);
  keep_text(b, v->name[1], v->len[1]);
  keep_text(b, v->name[2], v->len[2]);
  return 0;
}

static int append(struct batch *b, const struct record_view *v) {
  size_t nv = v->kind == RECORD_NOTIFY ? 0 : v->nvalues;
  if (reserve((void **)&b->entries, &b->cap, b->n, 1, sizeof(*b->entries)) ||
      reserve((void **)&b->values, &b->values_cap, b->nvalues, nv,
              sizeof(*b->values)) ||
      reserve((void **)&b->text, &b->text_cap, b->text_len,
              3 * RECORD_NAME_SIZE + RECORD_TEXT_SIZE, 1))
    return -1;
  struct batch_entry *e = &b->entries[b->n];
  e->kind = (uint8_t)v->kind;
  e->nvalues = (uint8_t)nv;
  e->severity = (uint8_t)v->severity;
  e->value = (uint32_t)b->nvalues;
  for (size_t i = 0; i < nv; i++) {
    if (v->kind == RECORD_DERIVE)
      b->values[b->nvalues++].derive = v->derive[i];
    else
      b->values[b->nvalues++].gauge = v->gauge[i];
  }
  if (place_series(b, v, e) != 0)
    return -1;
  if (b->n >= b->used)
    b->used = b->n + 1;
  if (v->kind == RECORD_NOTIFY) {
    e->text = (uint32_t)b->text_len;
    record_text(v->text, v->text_len, b->text + b->text_len);
    b->text_len += strlen(b->text + b->text_len) + 1;
  }
  b->n++;
  return 0;
}

size_t batch_count(const struct batch *b) { return b->n; }

long batch_series(const struct batch *b, size_t i) {
  uint32_t id = b->entries[i].series;
  return id == BATCH_NEW_SERIES ? -1 : (long)id;
}

/* The three names of a new series' record, in the text store. */
static void new_name(const struct batch *b, const struct batch_entry *e,
                     const char *name[3]) {
  const char *p = b->text + e->name;
  for (int k = 0; k < 3; k++) {
    name[k] = p;
    p += strlen(p) + 1;
  }
}

void batch_record(const struct batch *b, size_t i, struct record *r) {
  const struct batch_entry *e = &b->entries[i];
  r->kind = (enum record_kind)e->kind;
  r->nvalues = e->nvalues;
  r->severity = (enum record_severity)e->severity;
  char *const dst[3] = {r->plugin_instance, r->type, r->type_instance};
  if (e->series != BATCH_NEW_SERIES) {
    offsets_name(b->series, e->series, dst, RECORD_NAME_SIZE);
  } else {
    const char *name[3];
    new_name(b, e, name);
    for (int k = 0; k < 3; k++)
      memcpy(dst[k], name[k], strlen(name[k]) + 1);
  }
  for (size_t k = 0; k < e->nvalues; k++) {
    if (e->kind == RECORD_DERIVE)
      r->derive[k] = b->values[e->value + k].derive;
    else
      r->gauge[k] = b->values[e->value + k].gauge;
  }
  if (e->kind == RECORD_NOTIFY)
    memcpy(r->text, b->text + e->text, strlen(b->text + e->text) + 1);
}

static uint64_t hash_new(const struct batch *b, const struct batch_entry *e) {
  const char *name[3];
  new_name(b, e, name);
  struct series_name n = {{name[0], name[1], name[2]},
                          {strlen(name[0]), strlen(name[1]), strlen(name[2])}};
  return offsets_hash(&n);
}

static bool same_new(const struct batch *b, const struct batch_entry *x,
                     const struct batch_entry *y) {
  const char *p = b->text + x->name, *q = b->text + y->name;
  for (int k = 0; k < 3; k++) {
    if (strcmp(p, q) != 0)
      return false;
    p += strlen(p) + 1;
    q += strlen(q) + 1;
  }
  return true;
}

/* The first value record naming a new series (one not in the table) that
 * an earlier record of the batch already named, into *dup (1 + its index,
 * or 0). Series of the table were checked as the records came
 * (stamped_before). Returns -1 when out of memory. */
static int find_new_duplicate(struct batch *b, size_t *dup) {
  *dup = 0;
  size_t nnew = 0;
  for (size_t i = 0; i < b->n; i++)
    nnew += b->entries[i].series == BATCH_NEW_SERIES;
  if (nnew == 0)
    return 0;
  size_t nslots = 16;
  while (nslots < 2 * nnew)
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
    const struct batch_entry *e = &b->entries[i];
    if (e->series != BATCH_NEW_SERIES || e->kind == RECORD_NOTIFY)
      continue;
    size_t k = (size_t)hash_new(b, e) & mask;
    for (; slots[k] != 0; k = (k + 1) & mask) {
      if (same_new(b, &b->entries[slots[k] - 1], e)) {
        *dup = i + 1;
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
  b->nvalues = 0;
  b->text_len = 0;
  b->first_dup = 0;
  if (++b->stamp == 0) { /* wrapped: no stale stamp may match */
    if (b->stamps != NULL)
      memset(b->stamps, 0, b->nstamps * sizeof(*b->stamps));
    b->stamp = 1;
  }
}

/* A hello starts the session of a staprun run. A second one in the same run
 * is refused and starts nothing: a module does not restart its counters
 * without being reloaded, so taking it as a new session would fold the
 * counters' values into their offsets and show a spike. */
static void feed_hello(struct batch *b, const struct record_view *v,
                       struct batch_result *res) {
  if (b->in_session || b->hello_refused) {
    if (b->open)
      taint(b, "it contained a bad line");
    res->event = BATCH_BAD_LINE;
    res->why = "a second hello in one staprun run; it starts no new session";
    return;
  }
  if (v->version != RECORD_PROTOCOL_VERSION ||
      !name_is(v->name[0], v->len[0], b->group)) {
    b->hello_refused = true;
    res->event = BATCH_REFUSED;
    res->version = v->version;
    memcpy(res->group, v->name[0], v->len[0]);
    res->group[v->len[0]] = '\0';
    res->why = v->version != RECORD_PROTOCOL_VERSION
                   ? "protocol version mismatch"
                   : "module is for another group";
    return;
  }
  b->in_session = true;
  b->have_last = false;
  res->event = BATCH_HELLO;
}

/* The end of a batch whose SEQ matched: is it complete and consistent? */
static void feed_end(struct batch *b, const struct record_view *v,
                     struct batch_result *res) {
  size_t dup;
  if (b->tainted) {
    res->event = BATCH_DISCARDED;
    res->why = b->taint_why;
  } else if (v->count != b->n) {
    res->event = BATCH_DISCARDED;
    res->why = "end COUNT differs from the records received";
  } else if (find_new_duplicate(b, &dup) != 0) {
    res->event = BATCH_DISCARDED;
    res->why = "out of memory";
  } else if (dup != 0 || b->first_dup != 0) {
    /* The earlier of the two: the batch's first record naming a series
     * that a record before it named. */
    if (dup == 0 || (b->first_dup != 0 && b->first_dup < dup))
      dup = b->first_dup;
    res->event = BATCH_DISCARDED;
    res->why = "it names one series twice";
    res->index = dup - 1;
    batch_record(b, dup - 1, &b->scratch);
    res->record = &b->scratch;
  } else {
    uint64_t expected = b->have_last ? b->last_seq + 1 : 1;
    res->gaps = b->seq > expected ? b->seq - expected : 0;
    b->have_last = true;
    b->last_seq = b->seq;
    res->event = BATCH_COMPLETE;
  }
}

/* derive, gauge, notify: kept if the batch is open and the record may be
 * in it. */
static void feed_record(struct batch *b, const struct record_view *v,
                        struct batch_result *res) {
  res->event = BATCH_NOTHING;
  if (!b->open) {
    res->event = BATCH_BAD_LINE;
    res->why = "value or notification outside a batch";
  } else if (!instance_in_group(b, v->name[0], v->len[0])) {
    taint(b, "it contained a bad line");
    res->event = BATCH_BAD_LINE;
    res->why = "plugin instance is not the group or GROUP-...";
  } else if ((res->why = reserved_type(v->name[1], v->len[1])) != NULL) {
    taint(b, "it contained a bad line");
    res->event = BATCH_BAD_LINE;
  } else if (b->n >= b->max_records) {
    taint(b, "it had more records than MaxBatchRecords");
  } else if (append(b, v) != 0) {
    taint(b, "out of memory");
  }
}

static void feed_info(struct batch *b, const struct record_view *v,
                      struct batch_result *res) {
  if (b->open) {
    taint(b, "it contained an info line");
    res->event = BATCH_BAD_LINE;
    res->why = "info inside a batch";
    return;
  }
  memset(&b->scratch, 0, sizeof(b->scratch));
  b->scratch.kind = RECORD_INFO;
  record_text(v->text, v->text_len, b->scratch.text);
  res->event = BATCH_INFO;
  res->record = &b->scratch;
}

void batch_feed(struct batch *b, const char *line, size_t len,
                struct batch_result *res) {
  struct record_view v;
  memset(res, 0, sizeof(*res));

  if (record_scan(line, len, &v, &res->why) != 0) {
    if (b->open)
      taint(b, "it contained a bad line");
    res->event = BATCH_BAD_LINE;
    return;
  }
  if (v.kind == RECORD_HELLO) {
    feed_hello(b, &v, res);
    return;
  }
  if (!b->in_session) {
    res->event = BATCH_BAD_LINE;
    res->why = "record before a valid hello line";
    return;
  }

  switch (v.kind) {
  case RECORD_DERIVE:
  case RECORD_GAUGE:
  case RECORD_NOTIFY:
    feed_record(b, &v, res);
    return;
  case RECORD_INFO:
    feed_info(b, &v, res);
    return;
  case RECORD_BEGIN:
    if (b->open) {
      res->event = BATCH_DISCARDED;
      res->why = "a begin arrived before its end";
      res->cut = true;
    } else {
      res->event = BATCH_NOTHING;
    }
    open_batch(b, v.seq);
    return;
  case RECORD_END:
    if (!b->open) {
      res->event = BATCH_BAD_LINE;
      res->why = "end without begin";
      return;
    }
    b->open = false;
    if (v.seq != b->seq) {
      res->event = BATCH_DISCARDED;
      res->why = "end SEQ differs from begin SEQ";
      return;
    }
    feed_end(b, &v, res);
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
  b->nvalues = 0;
  b->text_len = 0;
  return was_open;
}
