// SPDX-License-Identifier: BSD-3-Clause
// Migration on the sim backend: a software device writes into the source
// domain's memory from its own thread while pre-copy runs, until quiesce
// stops it; the destination domain must then hold the same mappings (IOVA,
// length, protection) with the same bytes, page for page.
#include "vfdma_test.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <csignal>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

namespace
{
constexpr uint64_t K4 = 4096, M2 = 2ull << 20;

// Zeroed memory aligned to 2 MiB when it is that large, else to 4 KiB
// (aligned_alloc wants the size a multiple of the alignment).
struct Buf {
	uint8_t *p;
	explicit Buf(size_t len)
	{
		size_t a = len >= M2 ? M2 : K4;
		p = static_cast<uint8_t *>(aligned_alloc(a, (len + a - 1) / a * a));
		memset(p, 0, len);
	}
	~Buf()
	{
		free(p);
	}
	Buf(const Buf &) = delete;
	Buf &operator=(const Buf &) = delete;
};

struct Map {
	std::unique_ptr<Buf> buf;
	uint64_t iova, len;
	unsigned prot;
};

// The driver under migration: its callbacks, and a device thread.
struct Src {
	vfdma_domain *d;
	std::vector<Map> maps;
	std::vector<uint8_t> state;
	std::thread writer, mapper; // both stop in quiesce
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> writes{0};
	int quiesces = 0, resumes = 0, saves = 0;
	int quiesce_rc = 0, save_rc = 0;
	bool quiesced = false;
	std::mt19937_64 rng;

	explicit Src(uint64_t seed, int small = 12, uint64_t big = 8 * M2) : rng(seed)
	{
		d = vfdma_test_open_sim();
		add(big, VFDMA_PROT_RW); // 2 MiB leaves
		for (int i = 0; i < small; i++)
			add(K4 * (1 + rng() % 16), VFDMA_PROT_RW);
		add(16 * K4, VFDMA_PROT_READ);
		state.resize(10000);
		for (auto &b : state)
			b = (uint8_t)rng();
	}
	~Src()
	{
		quiesce();
		vfdma_domain_close(d);
	}
	void add(uint64_t len, unsigned prot)
	{
		Map m{std::make_unique<Buf>(len), 0, len, prot};
		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t v = rng();
			memcpy(m.buf->p + i, &v, 8);
		}
		ASSERT_EQ(vfdma_map(d, m.buf->p, len, prot, 0, &m.iova), 0);
		maps.push_back(std::move(m));
	}
	// Random device writes into the RW mappings until quiesce.
	void start_writer(uint64_t seed)
	{
		writer = std::thread([this, seed] {
			vfdma_device *dev = vfdma_sim_device_create(d);
			ASSERT_NE(dev, nullptr);
			std::mt19937_64 r(seed);
			std::vector<uint8_t> pat(16384);
			for (auto &b : pat)
				b = (uint8_t)r();
			while (!stop.load(std::memory_order_acquire)) {
				const Map &m = maps[r() % (maps.size() - 1)]; // the last is READ
				uint64_t len = 1 + r() % 8192;
				len = len < m.len ? len : m.len;
				uint64_t off = r() % (m.len - len + 1);
				ASSERT_EQ(vfdma_sim_dma_write(dev, m.iova + off, &pat[r() % 8192], len), 0);
				writes.fetch_add(1, std::memory_order_relaxed);
			}
			vfdma_device_close(dev);
		});
	}
	void quiesce()
	{
		stop.store(true, std::memory_order_release);
		if (writer.joinable())
			writer.join();
		if (mapper.joinable())
			mapper.join();
	}
	static int cb_quiesce(void *ctx)
	{
		auto *s = static_cast<Src *>(ctx);
		s->quiesces++;
		if (s->quiesce_rc)
			return s->quiesce_rc;
		s->quiesce();
		s->quiesced = true;
		return 0;
	}
	static int cb_save(void *ctx, vfdma_migrate *mig)
	{
		auto *s = static_cast<Src *>(ctx);
		s->saves++;
		if (s->save_rc)
			return s->save_rc;
		EXPECT_NE(vfdma_migrate_log(mig), nullptr);
		size_t a = 1, b = 4000; // three pieces, one of one byte
		int rc = vfdma_migrate_put_state(mig, s->state.data(), a);
		if (!rc)
			rc = vfdma_migrate_put_state(mig, s->state.data() + a, b - a);
		if (!rc)
			rc = vfdma_migrate_put_state(mig, s->state.data() + b, s->state.size() - b);
		return rc;
	}
	static int cb_resume(void *ctx)
	{
		auto *s = static_cast<Src *>(ctx);
		s->resumes++;
		s->quiesced = false;
		return 0;
	}
	vfdma_migrate_ops ops()
	{
		vfdma_migrate_ops o = {};
		o.quiesce = cb_quiesce;
		o.save = cb_save;
		o.resume = cb_resume;
		return o;
	}
	uint64_t mapped() const
	{
		uint64_t n = 0;
		for (auto &m : maps)
			n += m.len;
		return n;
	}
};

// The destination driver: keeps the state it was given.
struct Dst {
	vfdma_domain *d;
	vfdma_migrate_dst *dst = nullptr;
	std::vector<uint8_t> state;
	int restores = 0, resumes = 0, restore_rc = 0;
	Dst()
	{
		d = vfdma_test_open_sim();
	}
	~Dst()
	{
		EXPECT_EQ(vfdma_migrate_dst_destroy(dst), 0);
		EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
		vfdma_domain_close(d);
	}
	static int cb_restore(void *ctx, const void *p, size_t len)
	{
		auto *s = static_cast<Dst *>(ctx);
		s->restores++;
		if (s->restore_rc)
			return s->restore_rc;
		s->state.assign((const uint8_t *)p, (const uint8_t *)p + len);
		return 0;
	}
	static int cb_resume(void *ctx)
	{
		static_cast<Dst *>(ctx)->resumes++;
		return 0;
	}
	vfdma_migrate_dst *create()
	{
		vfdma_migrate_ops o = {};
		o.restore = cb_restore;
		o.resume = cb_resume;
		dst = vfdma_migrate_dst_create(d, &o, this, nullptr);
		EXPECT_NE(dst, nullptr);
		return dst;
	}
};

// The destination holds exactly the source's mappings, byte for byte, with
// their protections (checked by device DMA).
void expect_same(Src &s, Dst &t)
{
	EXPECT_EQ(vfdma_test_domain_info(t.d).mappings, s.maps.size());
	EXPECT_EQ(t.state, s.state);
	vfdma_device *dev = vfdma_sim_device_create(t.d);
	ASSERT_NE(dev, nullptr);
	for (const Map &m : s.maps) {
		void *va = nullptr;
		uint64_t len = 0;
		ASSERT_EQ(vfdma_iova_to_vaddr(t.d, m.iova, &va, &len), 0) << std::hex << m.iova;
		ASSERT_EQ(len, m.len);
		EXPECT_NE(va, (void *)m.buf->p);
		for (uint64_t p = 0; p < m.len; p += K4)
			ASSERT_EQ(memcmp((uint8_t *)va + p, m.buf->p + p, K4), 0)
				<< "page at IOVA 0x" << std::hex << m.iova + p << " differs";
		uint8_t x = 0;
		EXPECT_EQ(vfdma_sim_dma_read(dev, m.iova + m.len - 1, &x, 1), 0);
		int w = vfdma_sim_dma_write(dev, m.iova, &x, 1);
		EXPECT_EQ(w, m.prot & VFDMA_PROT_WRITE ? 0 : -EFAULT);
	}
	vfdma_device_close(dev);
}
} // namespace

TEST(SimMigrate, StreamOverSocketWhileTheDeviceWrites)
{
	uint64_t seed = vfdma_test_seed("SimMigrate.Stream");
	Src s(seed);
	Dst t;
	vfdma_migrate_ops ops = s.ops();
	vfdma_migrate *mig = vfdma_migrate_create(s.d, &ops, &s);
	ASSERT_NE(mig, nullptr);
	ASSERT_NE(t.create(), nullptr);
	int sv[2];
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.start_writer(seed + 1);
	while (s.writes.load() < 1000)
		std::this_thread::yield();
	vfdma_migrate_stats st = {};
	int save_rc = -1;
	uint64_t writes_before = s.writes.load();
	std::thread sender([&] {
		vfdma_migrate_opts o = {};
		o.max_rounds = 6;
		save_rc = vfdma_migrate_save_fd(mig, sv[0], &o, &st);
		close(sv[0]);
	});
	int rc = vfdma_migrate_restore_fd(t.dst, sv[1]);
	sender.join();
	close(sv[1]);
	ASSERT_EQ(save_rc, 0);
	ASSERT_EQ(rc, 0);
	fprintf(stderr, "[  INFO    ] %llu device writes; %u rounds, round 0 %llu B, last %llu B, "
			"final %llu B\n",
		(unsigned long long)s.writes.load(), st.rounds,
		(unsigned long long)st.round_bytes[0],
		(unsigned long long)st.round_bytes[st.rounds - 1],
		(unsigned long long)st.final_bytes);
	EXPECT_GT(s.writes.load(), writes_before) << "the device wrote nothing during pre-copy";
	EXPECT_EQ(s.quiesces, 1);
	EXPECT_EQ(s.saves, 1);
	EXPECT_EQ(s.resumes, 0);
	EXPECT_EQ(t.restores, 1);
	EXPECT_EQ(t.resumes, 1);
	EXPECT_GE(st.rounds, 2u);
	EXPECT_LE(st.rounds, 6u);
	EXPECT_EQ(st.round_bytes[0], s.mapped());
	EXPECT_EQ(st.maps, s.maps.size());
	EXPECT_EQ(st.state_bytes, s.state.size());
	vfdma_migrate_dst_info di;
	ASSERT_EQ(vfdma_migrate_dst_get_info(t.dst, &di), 0);
	EXPECT_EQ(di.done, 1);
	EXPECT_EQ(di.error, 0);
	EXPECT_EQ(di.bytes, s.mapped());
	EXPECT_EQ(di.data_bytes, st.total_bytes);
	expect_same(s, t);
	// The source's domain is untouched and has no log left.
	EXPECT_EQ(vfdma_test_domain_info(s.d).mappings, s.maps.size());
	vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
	EXPECT_NE(log, nullptr);
	vfdma_dirty_stop(log);
	vfdma_migrate_destroy(mig);
}

TEST(SimMigrate, CallbackSinkWithMappingsComingAndGoing)
{
	uint64_t seed = vfdma_test_seed("SimMigrate.Callback");
	// Declared before the source, whose destructor joins the thread using them.
	std::atomic<int> churns{0};
	std::unique_ptr<Buf> last;
	uint64_t last_iova = 0;
	Src s(seed);
	Dst t;
	vfdma_migrate_ops ops = s.ops();
	vfdma_migrate *mig = vfdma_migrate_create(s.d, &ops, &s);
	ASSERT_NE(mig, nullptr);
	vfdma_migrate_sink sink;
	ASSERT_EQ(vfdma_migrate_dst_sink(t.create(), &sink), 0);
	// While pre-copy runs, a second thread maps new buffers and unmaps the
	// one before (freeing its memory at once).
	s.mapper = std::thread([&] {
		std::mt19937_64 r(seed + 2);
		while (!s.stop.load(std::memory_order_acquire)) {
			auto b = std::make_unique<Buf>(64 * K4);
			memset(b->p, (int)(r() & 0xff), 64 * K4);
			uint64_t iova;
			ASSERT_EQ(vfdma_map(s.d, b->p, 64 * K4, VFDMA_PROT_RW, 0, &iova), 0);
			if (last) {
				ASSERT_EQ(vfdma_unmap(s.d, last_iova, 64 * K4), 0);
			}
			last = std::move(b);
			last_iova = iova;
			churns++;
		}
	});
	s.start_writer(seed + 1);
	vfdma_migrate_stats st = {};
	vfdma_migrate_opts o = {};
	o.max_rounds = 8;
	o.threshold = 1;
	ASSERT_EQ(vfdma_migrate_save(mig, &sink, &o, &st), 0);
	ASSERT_FALSE(s.mapper.joinable()); // quiesce stopped it
	ASSERT_TRUE(last);
	fprintf(stderr, "[  INFO    ] %d map/unmap cycles, %llu maps, %llu unmaps sent\n",
		churns.load(), (unsigned long long)st.maps, (unsigned long long)st.unmaps);
	s.maps.push_back(Map{std::move(last), last_iova, 64 * K4, VFDMA_PROT_RW});
	EXPECT_EQ(t.resumes, 1);
	EXPECT_EQ(st.maps - st.unmaps, s.maps.size());
	expect_same(s, t);
	vfdma_migrate_destroy(mig);
}

namespace
{
// A sink that forwards to a destination and has a device write one new page
// per data record it forwards, so every round leaves work for the next.
struct Busy {
	vfdma_migrate_sink to;
	vfdma_device *dev;
	const Src *src;
	uint64_t next = 0;
	static int data(void *ctx, uint64_t iova, const void *p, uint64_t len)
	{
		auto *b = static_cast<Busy *>(ctx);
		uint8_t v = (uint8_t)b->next;
		const Map &m = b->src->maps[0];
		int rc = 0;
		if (!b->src->quiesced) // a quiesced device writes nothing
			rc = vfdma_sim_dma_write(b->dev, m.iova + (b->next++ * K4) % m.len, &v, 1);
		return rc ? rc : b->to.data(b->to.ctx, iova, p, len);
	}
	static int map(void *ctx, uint64_t iova, uint64_t len, unsigned prot)
	{
		auto *b = static_cast<Busy *>(ctx);
		return b->to.map(b->to.ctx, iova, len, prot);
	}
	static int unmap(void *ctx, uint64_t iova, uint64_t len)
	{
		auto *b = static_cast<Busy *>(ctx);
		return b->to.unmap(b->to.ctx, iova, len);
	}
	static int state(void *ctx, const void *p, size_t len)
	{
		auto *b = static_cast<Busy *>(ctx);
		return b->to.state(b->to.ctx, p, len);
	}
	static int end(void *ctx)
	{
		auto *b = static_cast<Busy *>(ctx);
		return b->to.end(b->to.ctx);
	}
};

vfdma_migrate_stats run_busy(unsigned max_rounds, uint64_t threshold, bool busy)
{
	Src s(7, 12, 2 * M2);
	Dst t;
	vfdma_migrate_ops ops = s.ops();
	vfdma_migrate *mig = vfdma_migrate_create(s.d, &ops, &s);
	Busy b;
	b.dev = busy ? vfdma_sim_device_create(s.d) : nullptr;
	b.src = &s;
	EXPECT_EQ(vfdma_migrate_dst_sink(t.create(), &b.to), 0);
	vfdma_migrate_sink sink = {Busy::map, Busy::unmap, Busy::data, Busy::state, Busy::end, &b};
	vfdma_migrate_opts o = {};
	o.max_rounds = max_rounds;
	o.threshold = threshold;
	vfdma_migrate_stats st = {};
	EXPECT_EQ(vfdma_migrate_save(mig, busy ? &sink : &b.to, &o, &st), 0);
	expect_same(s, t);
	vfdma_device_close(b.dev);
	vfdma_migrate_destroy(mig);
	return st;
}
} // namespace

TEST(SimMigrate, StopsAtTheThresholdOrTheRoundLimit)
{
	// Idle device: the first dirty round finds nothing and pre-copy ends.
	vfdma_migrate_stats st = run_busy(16, 0, false);
	EXPECT_EQ(st.rounds, 2u);
	EXPECT_EQ(st.round_bytes[1], 0u);
	EXPECT_EQ(st.final_bytes, 0u);
	// Always busy: every round sends pages, so the limit decides.
	for (unsigned lim : {1u, 3u, 5u}) {
		st = run_busy(lim, K4, true);
		EXPECT_EQ(st.rounds, lim);
		EXPECT_GT(st.final_bytes, 0u);
		for (unsigned r = 1; r < lim; r++)
			EXPECT_GE(st.round_bytes[r], K4) << "round " << r;
	}
	// Busy but under a large threshold: one dirty round is enough.
	st = run_busy(16, 1ull << 30, true);
	EXPECT_EQ(st.rounds, 2u);
	EXPECT_GT(st.round_bytes[1], 0u);
}

TEST(SimMigrate, FinalAllSendsEverythingAfterQuiesce)
{
	Src s(11);
	Dst t;
	vfdma_migrate_ops ops = s.ops();
	vfdma_migrate *mig = vfdma_migrate_create(s.d, &ops, &s);
	vfdma_migrate_sink sink;
	ASSERT_EQ(vfdma_migrate_dst_sink(t.create(), &sink), 0);
	vfdma_migrate_opts o = {};
	o.flags = VFDMA_MIGRATE_FINAL_ALL;
	vfdma_migrate_stats st = {};
	// CPU stores the IOMMU cannot see, made during the save: only the
	// final full copy carries them.
	ops.quiesce = [](void *ctx) {
		auto *src = static_cast<Src *>(ctx);
		memset(src->maps[1].buf->p, 0x5a, src->maps[1].len);
		return 0;
	};
	vfdma_migrate_destroy(mig);
	mig = vfdma_migrate_create(s.d, &ops, &s);
	ASSERT_EQ(vfdma_migrate_save(mig, &sink, &o, &st), 0);
	EXPECT_EQ(st.final_bytes, s.mapped());
	expect_same(s, t);
	vfdma_migrate_destroy(mig);
}

namespace
{
// A whole stream of a small source, in memory.
std::vector<uint8_t> stream_of(Src &s)
{
	int fd = memfd_create("mig", 0);
	EXPECT_GE(fd, 0);
	vfdma_migrate_ops ops = s.ops();
	vfdma_migrate *mig = vfdma_migrate_create(s.d, &ops, &s);
	EXPECT_EQ(vfdma_migrate_save_fd(mig, fd, nullptr, nullptr), 0);
	vfdma_migrate_destroy(mig);
	s.resumes = 0, s.quiesced = false;
	std::vector<uint8_t> v((size_t)lseek(fd, 0, SEEK_END));
	EXPECT_EQ(pread(fd, v.data(), v.size(), 0), (ssize_t)v.size());
	close(fd);
	return v;
}

int restore_bytes(Dst &t, const std::vector<uint8_t> &v, size_t n)
{
	int fd = memfd_create("mig", 0);
	EXPECT_EQ(write(fd, v.data(), n), (ssize_t)n);
	lseek(fd, 0, SEEK_SET);
	vfdma_migrate_dst_destroy(t.dst);
	int rc = vfdma_migrate_restore_fd(t.create(), fd);
	close(fd);
	return rc;
}
} // namespace

TEST(SimMigrate, BadInputs)
{
	Src s(3);
	errno = 0;
	EXPECT_EQ(vfdma_migrate_create(nullptr, nullptr, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	vfdma_migrate *mig = vfdma_migrate_create(s.d, nullptr, nullptr);
	ASSERT_NE(mig, nullptr);
	Dst t;
	vfdma_migrate_sink sink;
	EXPECT_EQ(vfdma_migrate_dst_sink(nullptr, &sink), -EINVAL);
	EXPECT_EQ(vfdma_migrate_dst_sink(t.create(), nullptr), -EINVAL);
	ASSERT_EQ(vfdma_migrate_dst_sink(t.dst, &sink), 0);
	EXPECT_EQ(vfdma_migrate_save(nullptr, &sink, nullptr, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_migrate_save(mig, nullptr, nullptr, nullptr), -EINVAL);
	vfdma_migrate_sink bad = sink;
	bad.data = nullptr;
	EXPECT_EQ(vfdma_migrate_save(mig, &bad, nullptr, nullptr), -EINVAL);
	vfdma_migrate_opts o = {};
	o.max_rounds = VFDMA_MIGRATE_MAX_ROUNDS + 1;
	EXPECT_EQ(vfdma_migrate_save(mig, &sink, &o, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_migrate_save_fd(mig, 1, &o, nullptr), -EINVAL);
	o = {};
	o.granule = 4096 + 1;
	EXPECT_EQ(vfdma_migrate_save(mig, &sink, &o, nullptr), -EINVAL);
	o = {};
	o.flags = 1u << 7;
	EXPECT_EQ(vfdma_migrate_save(mig, &sink, &o, nullptr), -EINVAL);
	o = {};
	o.dirty_flags = 1u << 7;
	EXPECT_EQ(vfdma_migrate_save(mig, &sink, &o, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_migrate_save_fd(nullptr, 1, nullptr, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_migrate_save_fd(mig, -1, nullptr, nullptr), -EBADF);
	EXPECT_EQ(vfdma_migrate_put_state(mig, "x", 1), -EINVAL); // no save running
	EXPECT_EQ(vfdma_migrate_put_state(nullptr, "x", 1), -EINVAL);
	EXPECT_EQ(vfdma_migrate_log(mig), nullptr);
	EXPECT_EQ(vfdma_migrate_log(nullptr), nullptr);
	// A log running already: -EBUSY, and it keeps running.
	vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
	ASSERT_NE(log, nullptr);
	EXPECT_EQ(vfdma_migrate_save(mig, &sink, nullptr, nullptr), -EBUSY);
	std::vector<uint64_t> bm(8 * M2 / K4 / 64);
	EXPECT_EQ(vfdma_dirty_sync(log, s.maps[0].iova, 8 * M2, bm.data(), 0), 0);
	vfdma_dirty_stop(log);
	// Nothing reached the destination.
	vfdma_migrate_dst_info di;
	EXPECT_EQ(vfdma_migrate_dst_get_info(t.dst, &di), 0);
	EXPECT_EQ(di.mappings + di.data_bytes + (uint64_t)di.done + (uint64_t)di.error, 0u);
	EXPECT_EQ(vfdma_migrate_dst_get_info(nullptr, &di), -EINVAL);
	EXPECT_EQ(vfdma_migrate_dst_get_info(t.dst, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_migrate_restore_fd(t.dst, 0), -EINVAL); // a sink was handed out
	vfdma_migrate_destroy(mig);
	vfdma_migrate_destroy(nullptr);

	errno = 0;
	EXPECT_EQ(vfdma_migrate_dst_create(nullptr, nullptr, nullptr, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	vfdma_migrate_mem mem = {};
	errno = 0;
	EXPECT_EQ(vfdma_migrate_dst_create(t.d, nullptr, nullptr, &mem), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_migrate_restore_fd(nullptr, 0), -EINVAL);
	vfdma_migrate_dst *d2 = vfdma_migrate_dst_create(t.d, nullptr, nullptr, nullptr);
	EXPECT_EQ(vfdma_migrate_restore_fd(d2, -1), -EBADF);
	EXPECT_EQ(vfdma_migrate_dst_destroy(d2), 0);
	EXPECT_EQ(vfdma_migrate_dst_destroy(nullptr), 0);
}

TEST(SimMigrate, BadStreamsLeaveTheDestinationEmpty)
{
	Src s(5, 12, M2);
	std::vector<uint8_t> v = stream_of(s);
	Dst t;
	ASSERT_EQ(restore_bytes(t, v, v.size()), 0);
	expect_same(s, t);
	// Every cut: -EBADMSG, nothing mapped, restore and resume never called.
	uint64_t seed = vfdma_test_seed("SimMigrate.BadStreams");
	std::mt19937_64 r(seed);
	std::vector<size_t> cuts = {0, 8, 16, 17, 40, 64, v.size() - 24, v.size() - 1};
	for (int i = 0; i < 40; i++)
		cuts.push_back(r() % v.size());
	for (size_t n : cuts) {
		t.resumes = t.restores = 0;
		EXPECT_EQ(restore_bytes(t, v, n), -EBADMSG) << n;
		EXPECT_EQ(vfdma_test_domain_info(t.d).mappings, 0u) << n;
		EXPECT_EQ(t.resumes + t.restores, 0) << n;
		vfdma_migrate_dst_info di;
		ASSERT_EQ(vfdma_migrate_dst_get_info(t.dst, &di), 0);
		EXPECT_EQ(di.error, -EBADMSG);
		EXPECT_EQ(di.mappings, 0u);
	}
	// Damaged heads: magic, version, a record type, the END count.
	auto damaged = [&](size_t off, uint8_t x) {
		std::vector<uint8_t> w = v;
		w[off] ^= x;
		return restore_bytes(t, w, w.size());
	};
	EXPECT_EQ(damaged(0, 1), -EBADMSG);
	EXPECT_EQ(damaged(8, 2), -EBADMSG);
	EXPECT_EQ(damaged(16, 0x40), -EBADMSG);
	EXPECT_EQ(damaged(v.size() - 16, 1), -EBADMSG);
	EXPECT_EQ(vfdma_test_domain_info(t.d).mappings, 0u);
	// A mapping in the way at one of the IOVAs: that map fails, and the
	// ones made before it are undone.
	Buf block(K4);
	uint64_t iova = s.maps.back().iova;
	ASSERT_EQ(vfdma_map(t.d, block.p, K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &iova), 0);
	EXPECT_EQ(restore_bytes(t, v, v.size()), -EBUSY);
	EXPECT_EQ(vfdma_test_domain_info(t.d).mappings, 1u);
	EXPECT_EQ(vfdma_unmap(t.d, iova, K4), 0);
	// A restore that fails: undone too.
	t.restore_rc = -EPROTO;
	EXPECT_EQ(restore_bytes(t, v, v.size()), -EPROTO);
	EXPECT_EQ(vfdma_test_domain_info(t.d).mappings, 0u);
	EXPECT_EQ(t.resumes, 0);
}

TEST(SimMigrate, FailedCallbacksResumeTheSource)
{
	Src s(9);
	vfdma_migrate_ops ops = s.ops();
	vfdma_migrate *mig = vfdma_migrate_create(s.d, &ops, &s);
	{
		Dst t;
		vfdma_migrate_sink sink;
		ASSERT_EQ(vfdma_migrate_dst_sink(t.create(), &sink), 0);
		s.quiesce_rc = -ETIMEDOUT; // never quiesced: nothing to resume
		EXPECT_EQ(vfdma_migrate_save(mig, &sink, nullptr, nullptr), -ETIMEDOUT);
		EXPECT_EQ(s.resumes, 0);
		s.quiesce_rc = 0;
	}
	{
		Dst t;
		vfdma_migrate_sink sink;
		ASSERT_EQ(vfdma_migrate_dst_sink(t.create(), &sink), 0);
		s.save_rc = -EIO;
		EXPECT_EQ(vfdma_migrate_save(mig, &sink, nullptr, nullptr), -EIO);
		EXPECT_EQ(s.resumes, 1);
		EXPECT_FALSE(s.quiesced);
		s.save_rc = 0;
	}
	{
		Dst t;
		vfdma_migrate_sink sink;
		ASSERT_EQ(vfdma_migrate_dst_sink(t.create(), &sink), 0);
		t.restore_rc = -EPROTO; // the destination refuses at the end
		EXPECT_EQ(vfdma_migrate_save(mig, &sink, nullptr, nullptr), -EPROTO);
		EXPECT_EQ(s.resumes, 2);
		EXPECT_EQ(vfdma_test_domain_info(t.d).mappings, 0u);
	}
	{
		// A writer whose reader went away.
		int sv[2];
		ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		close(sv[1]);
		signal(SIGPIPE, SIG_IGN);
		EXPECT_EQ(vfdma_migrate_save_fd(mig, sv[0], nullptr, nullptr), -EPIPE);
		close(sv[0]);
	}
	EXPECT_EQ(vfdma_test_domain_info(s.d).mappings, s.maps.size());
	vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
	EXPECT_NE(log, nullptr);
	vfdma_dirty_stop(log);
	vfdma_migrate_destroy(mig);
}

// Fail each allocation and system call of a whole migration (save into a
// file, restore from it): every failure leaves the source as it was (no
// log, resumed) and the destination empty.
TEST(SimMigrate, FaultInjectionSweep)
{
	Src s(13, 2, M2); // a smaller source: the sweep runs the whole path per point
	Dst t;
	vfdma_migrate_ops ops = s.ops();
	vfdma_migrate *mig = vfdma_migrate_create(s.d, &ops, &s);
	ASSERT_NE(mig, nullptr);
	int fd = memfd_create("mig", 0);
	ASSERT_GE(fd, 0);
	uint64_t src_maps = vfdma_test_domain_info(s.d).mappings;
	bool saved = false; // the failure came after a successful save
	vfdma_migrate_ops dops = {};
	dops.restore = Dst::cb_restore;
	dops.resume = Dst::cb_resume;
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ANY,
		[&] {
			EXPECT_EQ(ftruncate(fd, 0), 0);
			lseek(fd, 0, SEEK_SET);
			saved = false;
			if (vfdma_migrate_save_fd(mig, fd, nullptr, nullptr))
				return false;
			saved = true;
			lseek(fd, 0, SEEK_SET);
			t.dst = vfdma_migrate_dst_create(t.d, &dops, &t, nullptr);
			return t.dst && vfdma_migrate_restore_fd(t.dst, fd) == 0;
		},
		[&] {
			expect_same(s, t);
			s.resumes = 0, s.quiesced = false;
			EXPECT_EQ(vfdma_migrate_dst_destroy(t.dst), 0);
			t.dst = nullptr;
		},
		[&] {
			// A failed save resumed the source; after a failed restore it
			// stays quiesced (the caller decides), as after any save.
			EXPECT_EQ(s.quiesced, saved);
			EXPECT_EQ(s.resumes, saved ? 0 : s.quiesces);
			EXPECT_EQ(vfdma_test_domain_info(s.d).mappings, src_maps);
			EXPECT_EQ(vfdma_test_domain_info(t.d).mappings, 0u);
			if (t.dst) {
				vfdma_migrate_dst_info di;
				EXPECT_EQ(vfdma_migrate_dst_get_info(t.dst, &di), 0);
				EXPECT_LT(di.error, 0);
				EXPECT_EQ(di.mappings, 0u);
				EXPECT_EQ(vfdma_migrate_dst_destroy(t.dst), 0);
				t.dst = nullptr;
			}
			vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
			EXPECT_NE(log, nullptr);
			vfdma_dirty_stop(log);
			s.resumes = s.quiesces = 0, s.quiesced = false;
		});
	fprintf(stderr, "[  INFO    ] %u injection points\n", points);
	EXPECT_GT(points, 20u);
	close(fd);
	vfdma_migrate_destroy(mig);
}
