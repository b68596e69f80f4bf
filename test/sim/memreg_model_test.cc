// SPDX-License-Identifier: BSD-3-Clause
// The registrations and the mapping cache against a reference model, one
// operation at a time: return codes, hits/misses/evictions, CLOCK order,
// folding, page counts, which kernel mappings exist, and what translates.
// At least a million operations at scale 1 (a tenth under sanitizers unless
// VFDMA_TEST_SCALE is set); the seed is printed, VFDMA_TEST_SEED replays.
#include "vfdma_test.h"

#include <algorithm>
#include <vector>

namespace
{
constexpr uint64_t K4 = 4096;
constexpr uint64_t REG_PAGES = 4096, CACHE_PAGES = 2048;

struct Region {
	uint64_t a, b, live;
};

struct Entry {
	uint64_t a, b, iova; // pages [a, b) of the cache area; IOVA of page a
	unsigned prot;
	int refs;
	bool bit;
	bool live;
};

struct Held {
	uint64_t va_off, iova;
	int id;
};

struct Model {
	// registrations (pages of the registration area)
	std::vector<int> count = std::vector<int>(REG_PAGES, 0);
	std::vector<int> owner = std::vector<int>(REG_PAGES, -1);
	std::vector<Region> regions;
	// the cache (pages of the cache area)
	std::vector<Entry> ents;
	std::vector<int> idx = std::vector<int>(CACHE_PAGES, -1);
	std::vector<int> ring;
	size_t hand = 0;
	uint64_t budget = 1ull << 30, hits = 0, misses = 0, evictions = 0;

	uint64_t reg_bytes() const
	{
		uint64_t n = 0;
		for (int c : count)
			n += c ? K4 : 0;
		return n;
	}
	void ring_del(int id)
	{
		size_t i = std::find(ring.begin(), ring.end(), id) - ring.begin();
		ring.erase(ring.begin() + (long)i);
		if (hand > i)
			hand--;
		if (hand >= ring.size())
			hand = 0;
	}
	void ring_add(int id)
	{
		if (ring.empty()) {
			ring.push_back(id);
			hand = 0;
			return;
		}
		ring.insert(ring.begin() + (long)hand, id);
		hand++;
	}
	void retire(int id)
	{
		Entry &e = ents[id];
		for (uint64_t p = e.a; p < e.b; p++)
			if (idx[p] == id)
				idx[p] = -1;
		ring_del(id);
		e.live = false;
	}
	uint64_t cached() const
	{
		uint64_t n = 0;
		for (int id : ring)
			n += (ents[id].b - ents[id].a) * K4;
		return n;
	}
	void evict_to(uint64_t target, int keep)
	{
		uint64_t bytes = cached();
		for (uint64_t steps = 2 * ring.size() + 1; bytes > target && !ring.empty() && steps;
		     steps--) {
			int id = ring[hand];
			hand = (hand + 1) % ring.size();
			Entry &e = ents[id];
			if (id == keep || e.refs)
				continue;
			if (e.bit) {
				e.bit = false;
				continue;
			}
			bytes -= (e.b - e.a) * K4;
			retire(id);
			evictions++;
		}
	}
};

double model_scale()
{
	if (VFDMA_TEST_SANITIZED && !getenv("VFDMA_TEST_SCALE"))
		return 0.1;
	return vfdma_test_scale();
}
} // namespace

TEST(SimMemModel, MatchesTheReferenceModel)
{
	const uint64_t seed = vfdma_test_seed("SimMemModel.MatchesTheReferenceModel");
	std::mt19937_64 rng(seed);
	vfdma_domain_opts o = {};
	o.backend = VFDMA_BACKEND_SIM;
	vfdma_domain *d = vfdma_domain_open(&o);
	ASSERT_NE(d, nullptr);
	VfdmaTestBuf rbuf(REG_PAGES * K4), cbuf(CACHE_PAGES * K4);
	Model m;
	std::vector<std::pair<uint64_t, uint64_t>> regs; // registered ranges (pages)
	std::vector<Held> held;
	const uint64_t ops = (uint64_t)(1000000 * model_scale());
	uint64_t diffs = 0, n_reg = 0, n_acq = 0;
	auto page_range = [&](uint64_t max_pages, uint64_t pages) {
		uint64_t n = 1 + (rng() % 8 ? rng() % 8 : rng() % max_pages);
		uint64_t a = rng() % (pages - n + 1);
		return std::make_pair(a, a + n);
	};
#define DIFF(cond, what)                                                                     \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			ADD_FAILURE() << "op " << op << ": " << what << " (seed " << seed << ")"; \
			diffs++;                                                             \
			goto out;                                                            \
		}                                                                            \
	} while (0)

	for (uint64_t op = 0; op < ops; op++) {
		unsigned k = rng() % 100;
		if (k < 14) { // register, sometimes a batch of 2-3 (adjacent often)
			int n = rng() % 4 ? 1 : 2 + (int)(rng() % 2);
			std::vector<std::pair<uint64_t, uint64_t>> rs;
			for (int i = 0; i < n; i++) {
				auto r = page_range(300, REG_PAGES);
				if (i && rng() % 2 && rs[i - 1].second < REG_PAGES - 2) {
					r.first = rs[i - 1].second;
					r.second = std::min(REG_PAGES, r.first + 1 + rng() % 16);
				}
				rs.push_back(r);
			}
			std::vector<iovec> v;
			for (auto &r : rs) // byte ranges inside the pages: rounding
				v.push_back({rbuf.p + r.first * K4 + rng() % 64,
					     (r.second - r.first - 1) * K4 + 64 + rng() % (K4 - 128)});
			DIFF(vfdma_mem_register_batch(d, v.data(), v.size()) == 0, "register");
			// model: holes of the union become regions, then every range counts
			std::vector<bool> in(REG_PAGES);
			for (auto &r : rs)
				for (uint64_t p = r.first; p < r.second; p++)
					in[p] = true;
			for (uint64_t p = 0; p < REG_PAGES;) {
				if (!in[p] || m.count[p]) {
					p++;
					continue;
				}
				uint64_t q = p;
				while (q < REG_PAGES && in[q] && !m.count[q])
					q++;
				m.regions.push_back({p, q, q - p});
				for (uint64_t x = p; x < q; x++)
					m.owner[x] = (int)m.regions.size() - 1;
				p = q;
			}
			for (auto &r : rs) {
				for (uint64_t p = r.first; p < r.second; p++)
					m.count[p]++;
				regs.push_back(r);
			}
			n_reg++;
		} else if (k < 26) { // unregister a registration, or a random range
			std::pair<uint64_t, uint64_t> r;
			bool known = !regs.empty() && rng() % 8;
			size_t which = known ? rng() % regs.size() : 0;
			r = known ? regs[which] : page_range(64, REG_PAGES);
			bool ok = true;
			for (uint64_t p = r.first; p < r.second; p++)
				ok &= m.count[p] > 0;
			int rc = vfdma_mem_unregister(d, rbuf.p + r.first * K4 + 1,
						      (r.second - r.first) * K4 - 2);
			DIFF(rc == (ok ? 0 : -ENOENT), "unregister rc " << rc);
			if (ok) {
				for (uint64_t p = r.first; p < r.second; p++) {
					if (--m.count[p])
						continue;
					m.regions[m.owner[p]].live--;
					m.owner[p] = -1;
				}
				if (known)
					regs.erase(regs.begin() + (long)which);
				else // drop a registration that covers what the model dropped
					for (size_t i = 0; i < regs.size(); i++)
						if (regs[i] == r) {
							regs.erase(regs.begin() + (long)i);
							break;
						}
			}
		} else if (k < 36) { // translate a page of the registration area
			uint64_t p = rng() % REG_PAGES, off = rng() % K4, iova = 0, len = 0;
			const uint8_t *va = rbuf.p + p * K4 + off;
			int rc = vfdma_vaddr_to_iova(d, va, &iova, &len);
			bool any = false, len_ok = false;
			for (auto &g : m.regions)
				if (g.live && g.a <= p && p < g.b) {
					any = true;
					len_ok |= len == g.b * K4 - (p * K4 + off);
				}
			DIFF(rc == (any ? 0 : -ENOENT), "translate rc " << rc);
			if (any) {
				void *back = nullptr;
				DIFF(len_ok, "translation length " << len);
				DIFF(vfdma_iova_to_vaddr(d, iova, &back, nullptr) == 0 && back == va,
				     "translation does not lead back");
			}
		} else if (k < 64) { // acquire in the cache area
			auto r = page_range(24, CACHE_PAGES);
			uint64_t off = r.first * K4 + rng() % K4;
			uint64_t len = (r.second - r.first - 1) * K4 + 1;
			unsigned prot = 1 + rng() % 3;
			uint64_t iova = 0;
			int rc = vfdma_mem_acquire(d, cbuf.p + off, len, prot, &iova);
			DIFF(rc == 0, "acquire rc " << rc);
			int id = m.idx[off / K4];
			bool hit = id >= 0 && m.ents[id].a * K4 <= off &&
				   off + len <= m.ents[id].b * K4 && !(prot & ~m.ents[id].prot);
			if (hit) {
				Entry &e = m.ents[id];
				e.refs++;
				e.bit = true;
				m.hits++;
				DIFF(iova == e.iova + off - e.a * K4, "hit at another IOVA");
			} else {
				uint64_t a = off / K4, b = (off + len + K4 - 1) / K4;
				std::vector<int> fold;
				for (uint64_t p = a; p < b && fold.size() < 16; p++) {
					int x = m.idx[p];
					if (x >= 0 && !m.ents[x].refs &&
					    std::find(fold.begin(), fold.end(), x) == fold.end())
						fold.push_back(x);
				}
				uint64_t na = a, nb = b;
				unsigned np = prot;
				for (int x : fold) {
					na = std::min(na, m.ents[x].a);
					nb = std::max(nb, m.ents[x].b);
					np |= m.ents[x].prot;
				}
				m.ents.push_back({na, nb, iova - (off - na * K4), np, 1, false, true});
				id = (int)m.ents.size() - 1;
				for (uint64_t p = na; p < nb; p++)
					m.idx[p] = id;
				m.ring_add(id);
				for (int x : fold)
					m.retire(x);
				m.misses++;
				m.evict_to(m.budget, id);
			}
			held.push_back({off, iova, id});
			n_acq++;
		} else if (k < 96) { // release
			if (held.empty())
				continue;
			size_t i = rng() % held.size();
			Held h = held[i];
			held.erase(held.begin() + (long)i);
			DIFF(vfdma_mem_release(d, cbuf.p + h.va_off, h.iova) == 0, "release");
			m.ents[h.id].refs--;
			if (!m.ents[h.id].refs && rng() % 4 == 0) // once more: nothing left to drop
				DIFF(vfdma_mem_release(d, cbuf.p + h.va_off, h.iova) == -EINVAL,
				     "double release");
		} else if (k < 97) { // a new budget
			static const uint64_t b[] = {0, 8, 32, 128, 512};
			m.budget = b[rng() % 5] * K4;
			DIFF(vfdma_mem_set_budget(d, m.budget) == 0, "set budget");
			m.evict_to(m.budget, -1);
		} else { // compare every counter
			vfdma_mem_stats s;
			vfdma_domain_info in;
			DIFF(vfdma_mem_get_stats(d, &s) == 0 && vfdma_domain_get_info(d, &in) == 0,
			     "stats");
			uint64_t live = 0, live_bytes = 0, inuse = 0;
			for (auto &g : m.regions)
				if (g.live) {
					live++;
					live_bytes += (g.b - g.a) * K4;
				}
			for (int id : m.ring)
				inuse += m.ents[id].refs > 0;
			DIFF(s.registered_bytes == m.reg_bytes(), "registered bytes");
			DIFF(s.reg_mappings == live, "registration mappings " << s.reg_mappings << " vs " << live);
			DIFF(s.reg_mapped_bytes == live_bytes, "registration mapped bytes");
			DIFF(s.cache_entries == m.ring.size(), "cache entries");
			DIFF(s.cache_bytes == m.cached(), "cache bytes");
			DIFF(s.cache_in_use == inuse, "cache in use");
			DIFF(s.hits == m.hits && s.misses == m.misses && s.evictions == m.evictions,
			     "hits/misses/evictions " << s.hits << "/" << s.misses << "/" << s.evictions
						      << " vs " << m.hits << "/" << m.misses << "/"
						      << m.evictions);
			DIFF(in.mappings == live + m.ring.size(), "domain mappings");
			if (rng() % 64 == 0)
				DIFF(vfdma_domain_check(d) == 0, "domain check");
		}
	}
out:
	fprintf(stderr,
		"[  MODEL   ] %llu operations (%llu registers, %llu acquires), %llu differences, "
		"seed %llu\n",
		(unsigned long long)ops, (unsigned long long)n_reg, (unsigned long long)n_acq,
		(unsigned long long)diffs, (unsigned long long)seed);
	EXPECT_EQ(diffs, 0u);
	for (auto &h : held)
		vfdma_mem_release(d, cbuf.p + h.va_off, h.iova);
	EXPECT_EQ(vfdma_mem_set_budget(d, 0), 0);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}
