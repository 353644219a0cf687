/* Open-addressing hash table of series. Series are never removed: a port that
 * goes quiet keeps its offset so its counter does not jump back when it comes
 * back, and its id stays valid. The slot array is allocated once for
 * MaxSeries (at most half full, so a probe for a new name stays short even
 * when the table is full); the series themselves, and their names, take
 * memory only as they come. A module inventing names costs one failed
 * lookup per record, never memory.
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
  char *name; /* in the name arena: the three parts, each NUL-terminated */
  uint32_t len[3];
  uint32_t hash; /* low bits of the name's hash: most mismatches end here */
  /* Counter state: none until the series is dispatched as a counter. The
   * first data source is kept here (most types have one: no pointer to
   * follow per value), the others in `more'. */
  size_t nds;
  struct ds_state ds0;
  struct ds_state *more;
};

/* Names live in large blocks rather than one allocation each: 36,864 series
 * (9 groups at MaxSeries) would otherwise pay malloc's overhead per name. */
#define NAME_BLOCK 16384
struct name_block {
  struct name_block *next;
  size_t used, size;
  char data[];
};

struct offsets {
  uint32_t *slots; /* id + 1, 0 empty */
  size_t nslots;   /* power of two, at least twice max_series */
  struct series *series;
  size_t count, cap;
  size_t max_series;
  struct name_block *names;
};

struct offsets *offsets_new(size_t max_series) {
  if (max_series == 0 || max_series > UINT32_MAX / 4)
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
  for (size_t i = 0; i < o->count; i++)
    free(o->series[i].more);
  while (o->names != NULL) {
    struct name_block *next = o->names->next;
    free(o->names);
    o->names = next;
  }
  free(o->series);
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
  for (size_t i = 0; i < o->count; i++) {
    struct series *s = &o->series[i];
    for (size_t d = 0; d < s->nds; d++)
      carry(d == 0 ? &s->ds0 : &s->more[d - 1]);
  }
}

static uint64_t mix(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}

/* Eight bytes at a time, not byte by byte as FNV: this runs for every
 * record. Each part's length goes in first, so ("ab", "c") and ("a", "bc")
 * differ. */
uint64_t offsets_hash(const struct series_name *n) {
  uint64_t h = 0x243f6a8885a308d3ULL;
  for (int k = 0; k < 3; k++) {
    const char *p = n->part[k];
    size_t len = n->len[k];
    h = mix(h, len);
    for (; len >= 8; p += 8, len -= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      h = mix(h, w);
    }
    if (len > 0) {
      uint64_t w = 0;
      memcpy(&w, p, len);
      h = mix(h, w);
    }
  }
  return h;
}

static bool same_name(const struct series *s, const struct series_name *n) {
  if (s->len[0] != n->len[0] || s->len[1] != n->len[1] ||
      s->len[2] != n->len[2])
    return false;
  const char *p = s->name;
  for (int k = 0; k < 3; k++) {
    if (memcmp(p, n->part[k], n->len[k]) != 0)
      return false;
    p += n->len[k] + 1;
  }
  return true;
}

/* The slot of series n: where it is, or the empty slot ending its probe. */
static size_t probe(const struct offsets *o, const struct series_name *n,
                    uint64_t hash) {
  size_t mask = o->nslots - 1;
  size_t i = (size_t)hash & mask;
  for (; o->slots[i] != 0; i = (i + 1) & mask) {
    const struct series *s = &o->series[o->slots[i] - 1];
    if (s->hash == (uint32_t)hash && same_name(s, n))
      break;
  }
  return i;
}

long offsets_find(const struct offsets *o, const struct series_name *n,
                  uint64_t hash) {
  return (long)o->slots[probe(o, n, hash)] - 1;
}

bool offsets_named(const struct offsets *o, long id,
                   const struct series_name *n) {
  return id >= 0 && (size_t)id < o->count && same_name(&o->series[id], n);
}

/* Room for len bytes of names. */
static char *name_space(struct offsets *o, size_t len) {
  struct name_block *b = o->names;
  if (b == NULL || b->size - b->used < len) {
    size_t size = len > NAME_BLOCK ? len : NAME_BLOCK;
    b = malloc(sizeof(*b) + size);
    if (b == NULL)
      return NULL;
    b->next = o->names;
    b->used = 0;
    b->size = size;
    o->names = b;
  }
  char *p = b->data + b->used;
  b->used += len;
  return p;
}

/* A new series at slot i; -1 if out of memory. */
static long add(struct offsets *o, size_t i, const struct series_name *n,
                uint64_t hash) {
  if (o->count == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 64;
    if (cap > o->max_series)
      cap = o->max_series;
    struct series *p = realloc(o->series, cap * sizeof(*p));
    if (p == NULL)
      return -1;
    o->series = p;
    o->cap = cap;
  }
  char *name = name_space(o, n->len[0] + n->len[1] + n->len[2] + 3);
  if (name == NULL)
    return -1;
  struct series *s = &o->series[o->count];
  memset(s, 0, sizeof(*s));
  s->name = name;
  s->hash = (uint32_t)hash;
  for (int k = 0; k < 3; k++) {
    s->len[k] = (uint32_t)n->len[k];
    memcpy(name, n->part[k], n->len[k]);
    name[n->len[k]] = '\0';
    name += n->len[k] + 1;
  }
  o->slots[i] = (uint32_t)++o->count;
  return (long)o->count - 1;
}

long offsets_claim_name(struct offsets *o, const struct series_name *n,
                        uint64_t hash) {
  size_t i = probe(o, n, hash);
  if (o->slots[i] != 0)
    return (long)o->slots[i] - 1;
  if (o->count >= o->max_series)
    return -1;
  return add(o, i, n, hash);
}

void offsets_name(const struct offsets *o, long id, char *const dst[3],
                  size_t size) {
  const struct series *s = &o->series[id];
  const char *p = s->name;
  for (int k = 0; k < 3; k++) {
    size_t len = s->len[k] < size ? s->len[k] : size - 1;
    memcpy(dst[k], p, len);
    dst[k][len] = '\0';
    p += s->len[k] + 1;
  }
}

/* Counter state of data source ds, grown on first use (zeroed: a data
 * source first seen in a later session starts from nothing). */
static struct ds_state *ds_of(struct series *s, size_t ds) {
  if (ds == 0) {
    if (s->nds == 0)
      s->nds = 1; /* ds0 is zeroed with the series */
    return &s->ds0;
  }
  if (ds >= s->nds) {
    size_t had = s->nds > 1 ? s->nds - 1 : 0;
    struct ds_state *p = realloc(s->more, ds * sizeof(*p));
    if (p == NULL)
      return NULL;
    memset(p + had, 0, (ds - had) * sizeof(*p));
    s->more = p;
    s->nds = ds + 1;
  }
  return &s->more[ds - 1];
}

int offsets_update_id(struct offsets *o, long id, size_t ds, int64_t raw,
                      struct offsets_step *step) {
  if (ds >= OFFSETS_MAX_DS || id < 0 || (size_t)id >= o->count)
    return -1;
  struct ds_state *d = ds_of(&o->series[id], ds);
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

static void split_key(const char *key, struct series_name *n) {
  const char *a = strchr(key, '/');
  const char *b = a != NULL ? strchr(a + 1, '/') : NULL;
  if (b == NULL) {
    *n = (struct series_name){{key, "", ""}, {strlen(key), 0, 0}};
    return;
  }
  *n = (struct series_name){
      {key, a + 1, b + 1},
      {(size_t)(a - key), (size_t)(b - a - 1), strlen(b + 1)}};
}

static long claim_key(struct offsets *o, const char *key) {
  struct series_name n;
  split_key(key, &n);
  return offsets_claim_name(o, &n, offsets_hash(&n));
}

int offsets_claim(struct offsets *o, const char *key) {
  return claim_key(o, key) >= 0 ? 0 : -1;
}

int offsets_update(struct offsets *o, const char *key, size_t ds, int64_t raw,
                   struct offsets_step *step) {
  if (ds >= OFFSETS_MAX_DS)
    return -1;
  long id = claim_key(o, key);
  return id >= 0 ? offsets_update_id(o, id, ds, raw, step) : -1;
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

size_t offsets_capacity(const struct offsets *o) { return o->max_series; }
