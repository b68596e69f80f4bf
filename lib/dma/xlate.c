/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The lock-free translation table (see xlate.h for the layout and the
 * rules).  Writers run one at a time; every store a reader can see is a
 * single 64-bit atomic store of a complete entry or of a fully built table.
 */
#include <string.h>
#include <sys/mman.h>

#include "dma/xlate.h"
#include "util/sys.h"

#define CHUNK (1ull << 21)
#define PAGE 4096ull
#define TOP_BYTES (VFD_XLATE_TOP_N * sizeof(uint64_t *))

void vfd_xlate_init(struct vfd_xlate *t, enum vfd_xlate_kind kind)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
}

void vfd_xlate_fini(struct vfd_xlate *t)
{
	if (!t->top)
		return;
	for (uint32_t s = 0; s < t->nr_slots; s++) {
		uint64_t *l2 = t->top[t->slots[s]];
		for (unsigned j = 0; j < 512; j++)
			if (l2[j] && !(l2[j] & 1))
				vfd_free((void *)(uintptr_t)l2[j]);
		vfd_free(l2);
	}
	vfd_munmap(t->top, TOP_BYTES);
	vfd_free(t->slots);
	enum vfd_xlate_kind kind = t->kind;
	vfd_xlate_init(t, kind);
}

/* First index in the slot list whose slot is >= @g. */
static uint32_t slot_lower(const struct vfd_xlate *t, uint64_t g)
{
	uint32_t lo = 0, hi = t->nr_slots;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->slots[mid] < g)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Record top slot @g in the sorted list (before its l2 is published). */
static int slot_add(struct vfd_xlate *t, uint64_t g)
{
	if (t->nr_slots == t->cap_slots) {
		uint32_t cap = t->cap_slots ? 2 * t->cap_slots : 8;
		uint32_t *n = vfd_realloc(t->slots, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->slots = n;
		t->cap_slots = cap;
	}
	uint32_t i = slot_lower(t, g);
	memmove(&t->slots[i + 1], &t->slots[i], (t->nr_slots - i) * sizeof(*t->slots));
	t->slots[i] = (uint32_t)g;
	t->nr_slots++;
	return 0;
}

/* The leaf for the page @i pages into the run that leaf @e starts. */
static uint64_t leaf_step(const struct vfd_xlate *t, uint64_t e, uint64_t i)
{
	if (t->kind == VFD_XLATE_CONST || !e)
		return e;
	uint64_t rem = (e >> 1) & VFD_XLATE_REM_SAT;
	if (rem != VFD_XLATE_REM_SAT)
		rem -= i;
	return ((((e >> 28) + i) << 28)) | (rem << 1) | 1;
}

/* The leaf for page @p of the run [key, key + len) -> val. */
static uint64_t leaf_at(const struct vfd_xlate *t, uint64_t key, uint64_t len, uint64_t val,
			uint64_t p)
{
	if (t->kind == VFD_XLATE_CONST)
		return val | 1;
	uint64_t rem = (key + len - p) >> 12;
	if (rem > VFD_XLATE_REM_SAT)
		rem = VFD_XLATE_REM_SAT;
	return (((val + (p - key)) >> 12) << 28) | (rem << 1) | 1;
}

/* What a leaf translates its first page to (LINEAR) or holds (CONST). */
static uint64_t leaf_val(const struct vfd_xlate *t, uint64_t e)
{
	return t->kind == VFD_XLATE_CONST ? e & ~1ull : (e >> 28) << 12;
}

static void store(uint64_t *slot, uint64_t v)
{
	__atomic_store_n(slot, v, __ATOMIC_RELEASE);
}

/* Give the chunk at l2 slot @e an l3 table holding what @e held. */
static int split(struct vfd_xlate *t, uint64_t *e)
{
	uint64_t cur = *e;
	if (cur && !(cur & 1))
		return 0;
	uint64_t *l3 = vfd_calloc(512, sizeof(*l3));
	if (!l3)
		return -ENOMEM;
	for (unsigned i = 0; i < 512; i++)
		l3[i] = leaf_step(t, cur, i);
	t->table_bytes += 512 * sizeof(*l3);
	store(e, (uint64_t)(uintptr_t)l3);
	return 0;
}

int vfd_xlate_prepare(struct vfd_xlate *t, uint64_t key, uint64_t len)
{
	if (!t->top) {
		void *p;
		int rc = vfd_mmap(&p, NULL, TOP_BYTES, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (rc)
			return rc;
		__atomic_store_n(&t->top, (uint64_t **)p, __ATOMIC_RELEASE);
	}
	uint64_t end = key + len;
	for (uint64_t g = key >> 30; g <= (end - 1) >> 30; g++) {
		if (t->top[g])
			continue;
		uint64_t *l2 = vfd_calloc(512, sizeof(*l2));
		if (!l2 || slot_add(t, g)) {
			vfd_free(l2);
			return -ENOMEM;
		}
		t->table_bytes += 512 * sizeof(*l2);
		__atomic_store_n(&t->top[g], l2, __ATOMIC_RELEASE);
	}
	uint64_t ends[2] = {key, end - PAGE};
	for (int i = 0; i < 2; i++) {
		uint64_t cs = ends[i] & ~(CHUNK - 1);
		if (key <= cs && cs + CHUNK <= end)
			continue; /* covered whole */
		int rc = split(t, &t->top[cs >> 30][(cs >> 21) & 511]);
		if (rc)
			return rc;
	}
	return 0;
}

void vfd_xlate_set(struct vfd_xlate *t, uint64_t key, uint64_t len, uint64_t val, bool if_lower)
{
	if_lower = if_lower && t->kind == VFD_XLATE_LINEAR;
	uint64_t end = key + len;
	for (uint64_t cs = key & ~(CHUNK - 1); cs < end; cs += CHUNK) {
		uint64_t *e = &t->top[cs >> 30][(cs >> 21) & 511];
		uint64_t lo = cs > key ? cs : key, hi = cs + CHUNK < end ? cs + CHUNK : end;
		uint64_t cur = *e;
		if (lo == cs && hi == cs + CHUNK && (!cur || (cur & 1))) {
			uint64_t nv = leaf_at(t, key, len, val, cs);
			if (!if_lower || !cur || leaf_val(t, cur) > leaf_val(t, nv))
				store(e, nv);
			continue;
		}
		uint64_t *l3 = (uint64_t *)(uintptr_t)cur; /* prepared: a table */
		for (uint64_t p = lo; p < hi; p += PAGE) {
			uint64_t *s = &l3[(p >> 12) & 511];
			uint64_t nv = leaf_at(t, key, len, val, p);
			if (!if_lower || !*s || leaf_val(t, *s) > leaf_val(t, nv))
				store(s, nv);
		}
	}
}

static uint64_t replacement(const struct vfd_xlate *t, uint64_t p, vfd_xlate_best_fn best,
			    void *ctx)
{
	uint64_t k0, t0, l0;
	if (!best || !best(ctx, p, &k0, &t0, &l0))
		return 0;
	return leaf_at(t, k0, l0, t0, p);
}

void vfd_xlate_remove(struct vfd_xlate *t, uint64_t key, uint64_t len, uint64_t val,
		      vfd_xlate_best_fn best, void *ctx)
{
	if (!t->top)
		return;
	uint64_t end = key + len;
	for (uint64_t cs = key & ~(CHUNK - 1); cs < end; cs += CHUNK) {
		uint64_t *l2 = t->top[cs >> 30];
		if (!l2)
			continue;
		uint64_t *e = &l2[(cs >> 21) & 511];
		uint64_t lo = cs > key ? cs : key, hi = cs + CHUNK < end ? cs + CHUNK : end;
		uint64_t cur = *e;
		if (!cur)
			continue;
		if (cur & 1) {
			if (leaf_val(t, cur) == leaf_val(t, leaf_at(t, key, len, val, cs)))
				store(e, replacement(t, cs, best, ctx));
			continue;
		}
		uint64_t *l3 = (uint64_t *)(uintptr_t)cur;
		for (uint64_t p = lo; p < hi; p += PAGE) {
			uint64_t *s = &l3[(p >> 12) & 511];
			if (*s && leaf_val(t, *s) == leaf_val(t, leaf_at(t, key, len, val, p)))
				store(s, replacement(t, p, best, ctx));
		}
	}
}

uint64_t vfd_xlate_next(const struct vfd_xlate *t, uint64_t key, uint64_t end, uint64_t *at)
{
	if (!t->top)
		return 0;
	if (end > (1ull << VFD_XLATE_BITS))
		end = 1ull << VFD_XLATE_BITS;
	for (uint32_t s = slot_lower(t, key >> 30); s < t->nr_slots; s++) {
		uint64_t g = t->slots[s], gs = g << 30;
		if (gs >= end || key >= end)
			return 0;
		const uint64_t *l2 = t->top[g];
		uint64_t p = key > gs ? key : gs;
		for (uint64_t cs = p & ~(CHUNK - 1); cs < gs + (1ull << 30) && cs < end;
		     cs += CHUNK, p = cs) {
			uint64_t e = l2[(cs >> 21) & 511];
			if (!e)
				continue;
			if (e & 1) {
				*at = p;
				return leaf_step(t, e, (p - cs) >> 12);
			}
			const uint64_t *l3 = (const uint64_t *)(uintptr_t)e;
			for (; p < cs + CHUNK && p < end; p += PAGE) {
				if (l3[(p >> 12) & 511]) {
					*at = p;
					return l3[(p >> 12) & 511];
				}
			}
		}
	}
	return 0;
}
