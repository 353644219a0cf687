/* Open-addressing hash table of series. Series are never removed: a port that
 * goes quiet keeps its offset so its counter does not jump back when it comes
 * back. The table is allocated once for MaxSeries (at most half full, so a
 * probe for a new name stays short even when the table is full); a module
 * inventing names costs one failed lookup per record, never memory.
 *
 * Only a new session (hello) moves a counter's offset. A value that goes back
 * within a session is not taken as a reset: folding it into the offset, as a
 * restart is, would turn a module that glitches between 9 and 5 into a
 * counter climbing by 9 every other interval. The series holds its highest
 * value instead, losing at most the size of the decrease. */
#include "offset.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One data source of a counter series. */
struct ds_state {
  int64_t base; /* sum of the highest values of earlier sessions */
  int64_t high; /* highest raw value in this session */
  int64_t last; /* last raw value in this session */
};

struct series {
  char *key;
  struct ds_state *ds; /* NULL until the series is dispatched as a counter */
  size_t nds;
};

struct offsets {
  struct series *slots;
  size_t nslots; /* power of two, at least twice max_series */
  size_t count;
  size_t max_series;
};

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

struct offsets *offsets_new(size_t max_series) {
  if (max_series == 0)
    return NULL;
  struct offsets *o = calloc(1, sizeof(*o));
  if (o == NULL)
    return NULL;
  size_t n = 16;
  while (n < 2 * max_series)
    n *= 2;
  o->slots = calloc(n, sizeof(*o->slots));
  if (o->slots == NULL) {
    free(o);
    return NULL;
  }
  o->nslots = n;
  o->max_series = max_series;
  return o;
}

void offsets_free(struct offsets *o) {
  if (o == NULL)
    return;
  for (size_t i = 0; i < o->nslots; i++) {
    free(o->slots[i].key);
    free(o->slots[i].ds);
  }
  free(o->slots);
  free(o);
}

/* Saturates instead of overflowing: a counter this large is already
 * meaningless, a wrapped one would be a huge negative rate. */
static int64_t add_sat(int64_t a, int64_t b) {
  return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void carry(struct ds_state *d) {
  /* The highest value, not the last: the session may have ended while the
   * series was held, and the next one must go on from what was dispatched. */
  d->base = add_sat(d->base, d->high);
  d->high = 0;
  d->last = 0;
}

void offsets_new_session(struct offsets *o) {
  for (size_t i = 0; i < o->nslots; i++)
    for (size_t d = 0; d < o->slots[i].nds; d++)
      carry(&o->slots[i].ds[d]);
}

/* The series `key', taken into the table if it is new and there is room;
 * NULL otherwise. */
static struct series *find_or_claim(struct offsets *o, const char *key) {
  size_t mask = o->nslots - 1;
  size_t i = (size_t)hash(key) & mask;
  while (o->slots[i].key != NULL && strcmp(o->slots[i].key, key) != 0)
    i = (i + 1) & mask;
  struct series *s = &o->slots[i];
  if (s->key != NULL)
    return s;
  if (o->count >= o->max_series)
    return NULL;
  s->key = strdup(key);
  if (s->key == NULL)
    return NULL;
  o->count++;
  return s;
}

int offsets_claim(struct offsets *o, const char *key) {
  return find_or_claim(o, key) != NULL ? 0 : -1;
}

/* Counter state of data source ds, grown on first use (zeroed: a data
 * source first seen in a later session starts from nothing). */
static struct ds_state *ds_of(struct series *s, size_t ds) {
  if (ds >= s->nds) {
    struct ds_state *p = realloc(s->ds, (ds + 1) * sizeof(*p));
    if (p == NULL)
      return NULL;
    memset(p + s->nds, 0, (ds + 1 - s->nds) * sizeof(*p));
    s->ds = p;
    s->nds = ds + 1;
  }
  return &s->ds[ds];
}

int offsets_update(struct offsets *o, const char *key, size_t ds, int64_t raw,
                   struct offsets_step *step) {
  if (ds >= OFFSETS_MAX_DS)
    return -1;
  struct series *s = find_or_claim(o, key);
  struct ds_state *d = s != NULL ? ds_of(s, ds) : NULL;
  if (d == NULL)
    return -1;
  if (raw < 0)
    raw = 0;
  step->decreased = raw < d->last;
  step->previous = d->last;
  d->last = raw;
  if (raw > d->high)
    d->high = raw;
  step->high = d->high;
  step->value = add_sat(d->base, d->high);
  return 0;
}

int offsets_apply(struct offsets *o, const char *key, int64_t raw,
                  int64_t *out) {
  struct offsets_step step;
  if (offsets_update(o, key, 0, raw, &step) != 0)
    return -1;
  *out = step.value;
  return 0;
}

size_t offsets_count(const struct offsets *o) { return o->count; }
