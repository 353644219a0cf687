/* Open-addressing hash table of counter series. Series are never removed: a
 * port that goes quiet keeps its offset so its counter does not jump back
 * when it comes back.
 *
 * Only a new session (hello) moves a series' offset. A value that goes back
 * within a session is not taken as a reset: folding it into the offset, as a
 * restart is, would turn a module that glitches between 9 and 5 into a
 * counter climbing by 9 every other interval. The series holds its highest
 * value instead, losing at most the size of the decrease. */
#include "offset.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct series {
  char *key;
  int64_t base; /* sum of the highest values of earlier sessions */
  int64_t high; /* highest raw value in this session */
  int64_t last; /* last raw value in this session */
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
  for (size_t i = 0; i < o->nslots; i++)
    free(o->slots[i].key);
  free(o->slots);
  free(o);
}

/* Saturates instead of overflowing: a counter this large is already
 * meaningless, a wrapped one would be a huge negative rate. */
static int64_t add_sat(int64_t a, int64_t b) {
  return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void carry(struct series *s) {
  /* The highest value, not the last: the session may have ended while the
   * series was held, and the next one must go on from what was dispatched. */
  s->base = add_sat(s->base, s->high);
  s->high = 0;
  s->last = 0;
}

void offsets_new_session(struct offsets *o) {
  for (size_t i = 0; i < o->nslots; i++)
    if (o->slots[i].key != NULL)
      carry(&o->slots[i]);
}

int offsets_update(struct offsets *o, const char *key, int64_t raw,
                   struct offsets_step *step) {
  size_t mask = o->nslots - 1;
  size_t i = (size_t)hash(key) & mask;
  while (o->slots[i].key != NULL && strcmp(o->slots[i].key, key) != 0)
    i = (i + 1) & mask;

  struct series *s = &o->slots[i];
  if (s->key == NULL) {
    if (o->count >= o->max_series)
      return -1;
    s->key = strdup(key);
    if (s->key == NULL)
      return -1;
    s->base = 0;
    s->high = 0;
    s->last = 0;
    o->count++;
  }
  if (raw < 0)
    raw = 0;
  step->decreased = raw < s->last;
  step->previous = s->last;
  s->last = raw;
  if (raw > s->high)
    s->high = raw;
  step->high = s->high;
  step->value = add_sat(s->base, s->high);
  return 0;
}

int offsets_apply(struct offsets *o, const char *key, int64_t raw,
                  int64_t *out) {
  struct offsets_step step;
  if (offsets_update(o, key, raw, &step) != 0)
    return -1;
  *out = step.value;
  return 0;
}

size_t offsets_count(const struct offsets *o) { return o->count; }
