/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fault-sweep: every public operation that reaches the kernel, run with the
 * nth system call or allocation of the library failing (vfd_fault_arm with
 * VFD_SYS_ANY), for n = 1, 2, ... until the operation runs without reaching
 * an injected failure.  After every injected failure: a negative errno came
 * back, no fd leaked, and the domain is as before (mappings, mapped bytes,
 * devices, not broken, vfdma_domain_check() == 0).  After a success (a path
 * that recovered from the failure) the operation is undone and the fd count
 * must match too.
 *
 * One exception, by design of the core: when the kernel unmap itself fails,
 * the kernel's state is unknown, so the domain is marked broken (maps fail
 * with -EIO) and must still close cleanly; for vfdma_unmap that outcome is
 * what is checked, on a fresh domain each time.
 *
 * One result line per operation, with its number of injection points.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/mman.h>

#include "iommu/domain.h"
#include "util/sys.h"
#include "vfdma-guest.h"

#define K4 4096u
#define K64 (64u * 1024)

struct ctx {
	const char *bdf;
	struct vfdma_domain *d;
	struct vfdma_device *dev; /* the device operations act on */
	struct vfdma_domain *made;
	struct vfdma_device *made_dev;
	uint8_t *buf;
	uint64_t iova, keep_iova;
	struct vfdma_map_run runs[3];
	int efds[2];
	void *bar;
};

struct op {
	const char *name;
	void (*pre)(struct ctx *); /* before arming (not counted) */
	int (*run)(struct ctx *);  /* 0 or negative errno */
	void (*undo)(struct ctx *); /* after a success */
	void (*post)(struct ctx *); /* after undo/check */
	bool breaks;		    /* a failure leaves the domain broken (by design) */
};

struct snap {
	int fds;
	int maps; /* lines of /proc/self/maps */
	struct vfdma_domain_info info;
};

static int nr_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static void take(struct ctx *c, struct snap *s)
{
	s->fds = vg_nr_fds();
	s->maps = nr_maps();
	memset(&s->info, 0, sizeof(s->info));
	if (c->d)
		vfdma_domain_get_info(c->d, &s->info);
}

/* "" if @b matches @a, else what differs (in @why). */
static bool same(const struct snap *a, const struct snap *b, char *why, size_t len)
{
	if (a->fds != b->fds)
		snprintf(why, len, "fds %d -> %d", a->fds, b->fds);
	else if (a->maps != b->maps)
		snprintf(why, len, "memory mappings %d -> %d", a->maps, b->maps);
	else if (a->info.mappings != b->info.mappings || a->info.mapped_bytes != b->info.mapped_bytes)
		snprintf(why, len, "mappings %llu/%llu B -> %llu/%llu B",
			 (unsigned long long)a->info.mappings, (unsigned long long)a->info.mapped_bytes,
			 (unsigned long long)b->info.mappings, (unsigned long long)b->info.mapped_bytes);
	else if (a->info.nr_devices != b->info.nr_devices)
		snprintf(why, len, "devices %u -> %u", a->info.nr_devices, b->info.nr_devices);
	else if (a->info.broken != b->info.broken)
		snprintf(why, len, "domain broken");
	else
		return true;
	return false;
}

static void sweep(struct ctx *c, const struct op *op)
{
	char why[240] = "", d[160];
	unsigned n, fails = 0;
	for (n = 1; n < 5000; n++) {
		struct snap s_start, s0, s1, s_end;
		take(c, &s_start);
		if (op->pre)
			op->pre(c);
		take(c, &s0);
		vfd_fault_arm(VFD_SYS_ANY, n, EIO, false);
		int rc = op->run(c);
		unsigned long injected = vfd_fault_disarm();
		take(c, &s1);
		if (rc == 0) {
			if (op->undo)
				op->undo(c);
		} else if (rc > 0 || rc < -4095) {
			if (!fails++)
				snprintf(why, sizeof(why), "n=%u: returned %d, not a negative errno", n, rc);
		} else if (op->breaks) {
			int chk = vfdma_domain_check(c->d);
			if ((s1.fds != s0.fds || !s1.info.broken || chk != -EIO) && !fails++)
				snprintf(why, sizeof(why),
					 "n=%u: rc %d: fds %d -> %d, broken %d, check %d", n, rc, s0.fds,
					 s1.fds, s1.info.broken, chk);
		} else {
			int chk = vfdma_domain_check(c->d);
			if (!same(&s0, &s1, d, sizeof(d))) {
				if (!fails++)
					snprintf(why, sizeof(why), "n=%u: rc %d, %s", n, rc, d);
			} else if (chk && !fails++) {
				snprintf(why, sizeof(why), "n=%u: rc %d, check %d", n, rc, chk);
			}
		}
		if (op->post)
			op->post(c);
		/* Whatever happened, the whole round left nothing behind. */
		take(c, &s_end);
		if (!same(&s_start, &s_end, d, sizeof(d)) && !fails++)
			snprintf(why, sizeof(why), "n=%u: rc %d, after the round: %s", n, rc, d);
		if (!injected) {
			if (rc && !fails++)
				snprintf(why, sizeof(why), "failed (%d) without an injected fault", rc);
			break;
		}
	}
	if (fails)
		vt_fail(op->name, "%u bad outcomes of %u injection points; first: %s", fails, n - 1,
			why);
	else
		printf("PASS %s: %u injection points\n", op->name, n - 1), fflush(stdout);
}

/* ---- the operations ---- */

static int run_domain_open(struct ctx *c)
{
	c->made = vfdma_domain_open(NULL);
	return c->made ? 0 : -errno;
}
static void undo_domain_open(struct ctx *c)
{
	vfdma_domain_close(c->made);
	c->made = NULL;
}

static int run_device_open(struct ctx *c)
{
	c->made_dev = vfdma_device_open(c->d, c->bdf, 0);
	return c->made_dev ? 0 : -errno;
}
static void undo_device_open(struct ctx *c)
{
	vfdma_device_close(c->made_dev);
	c->made_dev = NULL;
}

static int run_map(struct ctx *c)
{
	return vfdma_map(c->d, c->buf + K64, K64, VFDMA_PROT_RW, 0, &c->iova);
}
static void undo_map(struct ctx *c)
{
	vfdma_unmap(c->d, c->iova, K64);
}

static int run_map_batch(struct ctx *c)
{
	c->runs[0] = (struct vfdma_map_run){c->buf + 2 * K64, K4, 0};
	c->runs[1] = (struct vfdma_map_run){c->buf + 2 * K64 + K4, K4, 0}; /* coalesced */
	c->runs[2] = (struct vfdma_map_run){c->buf + 3 * K64, 2 * K4, 0};
	return vfdma_map_batch(c->d, c->runs, 3, VFDMA_PROT_RW, 0);
}
static void undo_map_batch(struct ctx *c)
{
	struct vfdma_map_run un[2] = {{NULL, 2 * K4, c->runs[0].iova}, {NULL, 2 * K4, c->runs[2].iova}};
	vfdma_unmap_batch(c->d, un, 2);
}

/* unmap: a fresh domain with one device and the mapping to remove. */
static void pre_unmap(struct ctx *c)
{
	c->d = vfdma_domain_open(NULL);
	c->dev = c->d ? vfdma_device_open(c->d, c->bdf, 0) : NULL;
	if (c->dev)
		vfdma_map(c->d, c->buf + K64, K64, VFDMA_PROT_RW, 0, &c->iova);
}
static int run_unmap(struct ctx *c)
{
	return vfdma_unmap(c->d, c->iova, K64);
}
static void post_unmap(struct ctx *c)
{
	vfdma_domain_close(c->d); /* closes the device too */
	c->d = NULL;
	c->dev = NULL;
}

/*
 * PCI operations: each injection point needs a device with nothing cached
 * (BAR maps and region info are kept per device).  Reopening costs about a
 * second under emulation, so the test puts the open device back into the
 * state a fresh open gives instead: interrupts off and their eventfds
 * closed, BARs unmapped, region info dropped (white box: domain.h).
 */
static void pre_dev(struct ctx *c)
{
	struct vfdma_device *dev = c->dev;
	vfd_pci_release(dev);
	for (int i = 0; i < 6; i++) {
		if (dev->bars[i].addr)
			munmap(dev->bars[i].addr, dev->bars[i].len);
		dev->bars[i] = (struct vfd_bar_map){0};
	}
	for (unsigned i = 0; i < dev->nr_irq_fds; i++)
		close(dev->irq_fds[i]);
	free(dev->irq_fds);
	dev->irq_fds = NULL;
	dev->nr_irq_fds = 0;
}
static int run_bar_map(struct ctx *c)
{
	return c->dev ? vfdma_pci_bar_map(c->dev, 0, &c->bar, NULL) : -ENODEV;
}
static int run_irq_enable(struct ctx *c)
{
	int rc = c->dev ? vfdma_pci_irq_enable(c->dev, VFDMA_IRQ_AUTO, 2, c->efds) : -ENODEV;
	return rc > 0 ? 0 : rc;
}
static void undo_irq_enable(struct ctx *c)
{
	vfdma_pci_irq_disable(c->dev);
}

int main(void)
{
	char bdf[32];
	struct ctx c = {0};
	if (!(c.bdf = vg_bdf(0, bdf))) {
		vt_fail("setup", "no device in $VFDMA_VFIO_BDFS");
		return vt_exit_status();
	}
	int fds0 = vg_nr_fds();
	c.buf = vg_buf(4 * K64, 0);
	c.d = vg_domain();
	if (!c.d)
		return vt_exit_status();
	/* A mapping that lives through every sweep (replayed on each attach). */
	if (!vt_check("setup_map", vfdma_map(c.d, c.buf, K64, VFDMA_PROT_RW, 0, &c.keep_iova) == 0))
		return vt_exit_status();

	static const struct op open_ops[] = {
		{"vfdma_domain_open", NULL, run_domain_open, undo_domain_open, NULL, false},
		{"vfdma_device_open", NULL, run_device_open, undo_device_open, NULL, false},
	};
	static const struct op pci_ops[] = {
		{"vfdma_pci_bar_map", pre_dev, run_bar_map, pre_dev, NULL, false},
		{"vfdma_pci_irq_enable", pre_dev, run_irq_enable, undo_irq_enable, NULL, false},
	};
	for (size_t i = 0; i < sizeof(open_ops) / sizeof(open_ops[0]); i++)
		sweep(&c, &open_ops[i]);

	c.dev = vfdma_device_open(c.d, c.bdf, 0);
	if (!vt_check("setup_device", c.dev != NULL))
		return vt_exit_status();
	for (size_t i = 0; i < sizeof(pci_ops) / sizeof(pci_ops[0]); i++)
		sweep(&c, &pci_ops[i]);
	pre_dev(&c); /* leave no interrupt or BAR map behind for the next checks */
	static const struct op map_ops[] = {
		{"vfdma_map", NULL, run_map, undo_map, NULL, false},
		{"vfdma_map_batch", NULL, run_map_batch, undo_map_batch, NULL, false},
	};
	for (size_t i = 0; i < sizeof(map_ops) / sizeof(map_ops[0]); i++)
		sweep(&c, &map_ops[i]);
	vt_check("check_after_sweeps", vfdma_domain_check(c.d) == 0);
	vfdma_unmap(c.d, c.keep_iova, K64);
	vt_check("domain_close", vfdma_domain_close(c.d) == 0);

	c.d = NULL;
	static const struct op unmap_op = {"vfdma_unmap", pre_unmap, run_unmap, NULL, post_unmap, true};
	sweep(&c, &unmap_op);

	int fds1 = vg_nr_fds();
	if (fds0 != fds1)
		vt_fail("no_fd_leak", "%d fds at start, %d at the end", fds0, fds1);
	else
		vt_pass("no_fd_leak");
	free(c.buf);
	return vt_exit_status();
}
