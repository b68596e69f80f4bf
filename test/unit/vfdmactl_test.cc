// SPDX-License-Identifier: BSD-3-Clause
// vfdmactl against a fake sysfs tree: list's JSON and verdicts, bind and
// unbind with a minimal stand-in for the kernel (driver_override, unbind,
// drivers_probe, bind), the refusals and exit codes, info on the sim
// backend, and the JSON writer's escaping.  The host has no VFIO, so the
// real thing is tested in the VM tier (test/vm/tests/vfdmactl.test).
#include "vfdma_test.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "minijson.h"

extern "C" {
#include "ctl.h"
}

namespace fs = std::filesystem;

namespace {

struct FakeDev {
	std::string native; // the driver the kernel's match would pick
};

// A temporary tree: sys/, dev/, proc/, state/, plus the kernel's part.
class FakeSys : public ::testing::Test {
protected:
	fs::path root;
	std::map<std::string, FakeDev> devs;
	std::vector<std::string> writes; // "path-under-root=value"
	bool kernel_dead = false;        // never binds anything
	bool probe_ignores_native = false; // drivers_probe does not match IDs
	int next_cdev = 0;
	std::string out, err;

	void SetUp() override
	{
		char tmpl[] = "/tmp/vfdmactl-test-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		root = tmpl;
		for (const char *d : { "sys/bus/pci/devices", "sys/bus/pci/drivers/vfio-pci",
				       "sys/kernel/iommu_groups", "dev/vfio/devices", "proc" })
			fs::create_directories(root / d);
		put("sys/bus/pci/drivers_probe", "");
		put("sys/bus/pci/drivers/vfio-pci/bind", "");
		put("sys/bus/pci/drivers/vfio-pci/unbind", "");
		put("dev/iommu", "");
		put("dev/vfio/vfio", "");
		put("proc/mounts", "sysfs /sys sysfs rw 0 0\n");
	}

	void TearDown() override
	{
		fs::remove_all(root);
	}

	void put(const std::string &rel, const std::string &val)
	{
		fs::create_directories((root / rel).parent_path());
		std::ofstream(root / rel) << val;
	}

	std::string get(const std::string &rel)
	{
		std::ifstream f(root / rel);
		return std::string(std::istreambuf_iterator<char>(f), {});
	}

	fs::path devdir(const std::string &bdf)
	{
		return root / "sys/bus/pci/devices" / bdf;
	}

	void driver_exists(const std::string &drv)
	{
		put("sys/bus/pci/drivers/" + drv + "/bind", "");
		put("sys/bus/pci/drivers/" + drv + "/unbind", "");
	}

	// Attach @bdf to @drv as the kernel would (vfio-pci adds its nodes).
	void attach(const std::string &bdf, const std::string &drv)
	{
		fs::path d = devdir(bdf);
		if (drv == "vfio-pci" && !fs::is_symlink(d / "iommu_group"))
			return; // vfio-pci's probe fails (this kernel has no no-IOMMU mode)
		fs::remove(d / "driver");
		fs::create_directory_symlink(root / "sys/bus/pci/drivers" / drv, d / "driver");
		if (drv == "vfio-pci") {
			std::string cdev = "vfio" + std::to_string(next_cdev++);
			fs::create_directories(d / "vfio-dev" / cdev);
			put("dev/vfio/devices/" + cdev, "");
			std::string grp = fs::read_symlink(d / "iommu_group").filename();
			put("dev/vfio/" + grp, "");
		}
	}

	void detach(const std::string &bdf)
	{
		fs::path d = devdir(bdf);
		fs::remove(d / "driver");
		if (fs::exists(d / "vfio-dev"))
			for (auto &e : fs::directory_iterator(d / "vfio-dev"))
				fs::remove(root / "dev/vfio/devices" / e.path().filename());
		fs::remove_all(d / "vfio-dev");
	}

	void add(const std::string &bdf, unsigned int cls, const std::string &drv, int group,
		 int numa, const std::string &native = "")
	{
		fs::path d = devdir(bdf);
		fs::create_directories(d);
		char buf[16];
		put(d.lexically_relative(root) / "vendor", "0x1b36\n");
		put(d.lexically_relative(root) / "device", "0x0010\n");
		snprintf(buf, sizeof(buf), "0x%06x\n", cls);
		put(d.lexically_relative(root) / "class", buf);
		put(d.lexically_relative(root) / "numa_node", std::to_string(numa) + "\n");
		put(d.lexically_relative(root) / "driver_override", "(null)\n");
		if (group >= 0) {
			fs::path g = root / "sys/kernel/iommu_groups" / std::to_string(group);
			fs::create_directories(g / "devices");
			fs::create_directory_symlink(d, g / "devices" / bdf);
			fs::create_directory_symlink(g, d / "iommu_group");
		}
		devs[bdf].native = native.empty() ? drv : native;
		if (!devs[bdf].native.empty() && devs[bdf].native != "vfio-pci")
			driver_exists(devs[bdf].native);
		if (!drv.empty())
			attach(bdf, drv);
	}

	// The kernel's reaction to a sysfs write, reduced to what vfdmactl sees.
	static void kernel(struct ctl *c, const char *path, const char *val)
	{
		auto *self = static_cast<FakeSys *>(c->hook_arg);
		fs::path p(path);
		std::string rel = fs::relative(p, self->root).string();
		self->writes.push_back(rel + "=" + val);
		if (self->kernel_dead)
			return;
		std::string name = p.filename();
		std::string bdf = name == "driver_override" ? p.parent_path().filename().string() : val;
		if (name == "unbind") {
			self->detach(bdf);
		} else if (name == "bind") {
			self->attach(bdf, p.parent_path().filename());
		} else if (name == "drivers_probe") {
			if (fs::exists(self->devdir(bdf) / "driver"))
				return;
			std::string ov = self->get(self->devdir(bdf).lexically_relative(self->root) /
						   "driver_override");
			ov = ov.substr(0, ov.find('\n'));
			if (!ov.empty() && ov != "(null)")
				self->attach(bdf, ov);
			else if (!self->probe_ignores_native && !self->devs[bdf].native.empty())
				self->attach(bdf, self->devs[bdf].native);
		} else if (name == "driver_override" && std::string(val) == "\n") {
			self->put(self->devdir(bdf).lexically_relative(self->root) / "driver_override",
				  "(null)\n");
		}
	}

	int run(std::vector<std::string> args, unsigned int wait_ms = 2000)
	{
		std::string sys = (root / "sys").string(), dev = (root / "dev").string();
		std::string proc = (root / "proc").string(), state = (root / "state").string();
		char *obuf = nullptr, *ebuf = nullptr;
		size_t olen = 0, elen = 0;
		struct ctl c = {};
		c.out = open_memstream(&obuf, &olen);
		c.err = open_memstream(&ebuf, &elen);
		c.sys = sys.c_str();
		c.dev = dev.c_str();
		c.proc = proc.c_str();
		c.state = state.c_str();
		c.wait_ms = wait_ms;
		c.hook = kernel;
		c.hook_arg = this;
		args.insert(args.begin(), "vfdmactl");
		std::vector<char *> argv;
		for (auto &a : args)
			argv.push_back(a.data());
		argv.push_back(nullptr);
		int rc = ctl_main(&c, (int)args.size(), argv.data());
		fclose(c.out);
		fclose(c.err);
		out.assign(obuf, olen);
		err.assign(ebuf, elen);
		free(obuf);
		free(ebuf);
		return rc;
	}

	// Parsed JSON output of the last run (a parse failure fails the test).
	struct mj *json()
	{
		char e[128];
		struct mj *v = mj_parse(out.c_str(), e, sizeof(e));
		EXPECT_NE(v, nullptr) << e << "\n" << out;
		return v;
	}
};

const struct mj *find_dev(const struct mj *doc, const char *bdf)
{
	const struct mj *devs = mj_get(doc, "devices");
	for (size_t i = 0; i < mj_len(devs); i++)
		if (mj_str(mj_get(mj_at(devs, i), "bdf")) &&
		    !strcmp(mj_str(mj_get(mj_at(devs, i), "bdf")), bdf))
			return mj_at(devs, i);
	return nullptr;
}

std::string str(const struct mj *v)
{
	return mj_str(v) ? mj_str(v) : "<not a string>";
}

const char *A = "0000:41:00.0"; // NVMe on the kernel's nvme driver
const char *B = "0000:81:00.0"; // NVMe on vfio-pci, alone in its group
const char *C = "0000:82:00.0"; // NVMe on vfio-pci, group shared with a NIC on e1000e
const char *N = "0000:82:00.1";
const char *P = "0000:00:01.0"; // a root port

class VfdmactlTest : public FakeSys {
protected:
	void SetUp() override
	{
		FakeSys::SetUp();
		add(A, 0x010802, "nvme", 1, 0);
		add(B, 0x010802, "vfio-pci", 2, 1, "nvme");
		add(C, 0x010802, "vfio-pci", 3, 1, "nvme");
		add(N, 0x020000, "e1000e", 3, 1);
		add(P, 0x060400, "pcieport", 4, 0);
	}
};

} // namespace

TEST_F(VfdmactlTest, ListJsonDescribesEachDevice)
{
	ASSERT_EQ(run({ "list", "--json" }), CTL_OK) << err;
	struct mj *doc = json();
	ASSERT_NE(doc, nullptr);
	EXPECT_TRUE(mj_bool(mj_get(mj_get(doc, "host"), "dev_iommu"), false));
	EXPECT_TRUE(mj_bool(mj_get(mj_get(doc, "host"), "vfio_pci_driver"), false));

	const struct mj *a = find_dev(doc, A), *b = find_dev(doc, B), *c = find_dev(doc, C);
	ASSERT_TRUE(a && b && c);
	EXPECT_EQ(find_dev(doc, P), nullptr) << "bridges are hidden without --all";
	EXPECT_EQ(str(mj_get(a, "class")), "0x010802");
	EXPECT_EQ(str(mj_get(a, "class_name")), "NVMe");
	EXPECT_EQ(str(mj_get(a, "driver")), "nvme");
	EXPECT_EQ(mj_num(mj_get(a, "iommu_group"), -1), 1);
	EXPECT_EQ(mj_num(mj_get(a, "numa_node"), -1), 0);
	EXPECT_TRUE(mj_is_null(mj_get(a, "vfio_cdev")));
	EXPECT_FALSE(mj_bool(mj_get(a, "usable"), true));
	EXPECT_NE(str(mj_get(a, "reason")).find("bound to nvme"), std::string::npos);

	EXPECT_EQ(str(mj_get(b, "driver")), "vfio-pci");
	EXPECT_EQ(mj_num(mj_get(b, "numa_node"), -1), 1);
	EXPECT_EQ(str(mj_get(b, "vfio_cdev")), (root / "dev/vfio/devices/vfio0").string());
	EXPECT_TRUE(mj_bool(mj_get(b, "usable"), false));
	EXPECT_TRUE(mj_is_null(mj_get(b, "reason")));
	EXPECT_TRUE(mj_has_str(mj_get(b, "backends"), "iommufd"));
	EXPECT_TRUE(mj_has_str(mj_get(b, "backends"), "type1"));

	// C is on vfio-pci, but its group also holds the NIC on e1000e
	EXPECT_FALSE(mj_bool(mj_get(c, "usable"), true));
	EXPECT_NE(str(mj_get(c, "reason")).find(std::string("also holds ") + N), std::string::npos)
		<< str(mj_get(c, "reason"));
	EXPECT_EQ(mj_len(mj_get(c, "backends")), 0u);
	mj_free(doc);

	ASSERT_EQ(run({ "list", "--json", "--all" }), CTL_OK);
	doc = json();
	ASSERT_NE(find_dev(doc, P), nullptr);
	EXPECT_EQ(str(mj_get(find_dev(doc, P), "class_name")), "PCI bridge");
	EXPECT_EQ(mj_len(mj_get(doc, "devices")), 5u);
	mj_free(doc);
}

TEST_F(VfdmactlTest, ListSaysWhichBackendsCanOpenADevice)
{
	fs::remove(root / "dev/iommu");
	ASSERT_EQ(run({ "list", "--json", B }), CTL_OK);
	struct mj *doc = json();
	const struct mj *b = find_dev(doc, B);
	ASSERT_NE(b, nullptr);
	EXPECT_EQ(mj_len(mj_get(doc, "devices")), 1u);
	EXPECT_TRUE(mj_bool(mj_get(b, "usable"), false));
	EXPECT_FALSE(mj_has_str(mj_get(b, "backends"), "iommufd"));
	EXPECT_TRUE(mj_has_str(mj_get(b, "backends"), "type1"));
	mj_free(doc);

	fs::remove(root / "dev/vfio/vfio");
	ASSERT_EQ(run({ "list", "--json", B }), CTL_OK);
	doc = json();
	b = find_dev(doc, B);
	EXPECT_FALSE(mj_bool(mj_get(b, "usable"), true));
	EXPECT_NE(str(mj_get(b, "reason")).find("dev/iommu"), std::string::npos);
	EXPECT_NE(str(mj_get(b, "reason")).find("dev/vfio/vfio"), std::string::npos);
	mj_free(doc);
}

TEST_F(VfdmactlTest, ListHumanTableAndBadArguments)
{
	ASSERT_EQ(run({ "list" }), CTL_OK);
	EXPECT_EQ(out.rfind("BDF", 0), 0u) << out;
	EXPECT_NE(out.find(std::string(B) + "  1b36:0010  NVMe"), std::string::npos) << out;
	EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 5); // header + 4 devices
	EXPECT_EQ(run({ "list", "0000:99:00.0" }), CTL_ENODEV);
	EXPECT_EQ(run({ "list", "zz:00.0" }), CTL_EUSAGE);
	EXPECT_EQ(run({ "list", "--bogus" }), CTL_EUSAGE);
	EXPECT_EQ(run({}), CTL_EUSAGE);
	EXPECT_EQ(run({ "frobnicate" }), CTL_EUSAGE);
	EXPECT_NE(err.find("unknown command"), std::string::npos);
	EXPECT_EQ(run({ "--help" }), CTL_OK);
	EXPECT_NE(out.find("usage: vfdmactl"), std::string::npos);
}

TEST_F(VfdmactlTest, BindMovesADeviceToVfioAndUnbindGivesItBack)
{
	// short form of the address, as lspci prints it
	ASSERT_EQ(run({ "bind", "--json", "41:00.0" }), CTL_OK) << err;
	std::string d = "sys/bus/pci/devices/" + std::string(A);
	std::vector<std::string> want = {
		d + "/driver_override=vfio-pci",
		"sys/bus/pci/drivers/nvme/unbind=" + std::string(A),
		"sys/bus/pci/drivers_probe=" + std::string(A),
	};
	EXPECT_EQ(writes, want);
	EXPECT_EQ(get("state/" + std::string(A)), "nvme\n");
	struct mj *doc = json();
	const struct mj *r = find_dev(doc, A);
	ASSERT_NE(r, nullptr);
	EXPECT_EQ(str(mj_get(r, "action")), "bound");
	EXPECT_EQ(str(mj_get(r, "driver_before")), "nvme");
	EXPECT_EQ(str(mj_get(r, "driver")), "vfio-pci");
	EXPECT_EQ(str(mj_get(r, "vfio_cdev")), (root / "dev/vfio/devices/vfio2").string());
	mj_free(doc);

	ASSERT_EQ(run({ "list", "--json", A }), CTL_OK);
	doc = json();
	EXPECT_TRUE(mj_bool(mj_get(find_dev(doc, A), "usable"), false));
	mj_free(doc);

	writes.clear();
	ASSERT_EQ(run({ "unbind", "--json", A }), CTL_OK) << err;
	want = {
		d + "/driver_override=\n",
		"sys/bus/pci/drivers/vfio-pci/unbind=" + std::string(A),
		"sys/bus/pci/drivers_probe=" + std::string(A),
	};
	EXPECT_EQ(writes, want);
	EXPECT_FALSE(fs::exists(root / "state" / A));
	doc = json();
	r = find_dev(doc, A);
	EXPECT_EQ(str(mj_get(r, "action")), "unbound");
	EXPECT_EQ(str(mj_get(r, "driver")), "nvme");
	EXPECT_TRUE(mj_is_null(mj_get(r, "vfio_cdev")));
	mj_free(doc);
	EXPECT_EQ(fs::read_symlink(devdir(A) / "driver").filename(), "nvme");
}

TEST_F(VfdmactlTest, BindAndUnbindAreIdempotent)
{
	ASSERT_EQ(run({ "bind", B }), CTL_OK) << err;
	EXPECT_TRUE(writes.empty());
	EXPECT_NE(out.find("unchanged"), std::string::npos) << out;
	ASSERT_EQ(run({ "unbind", A }), CTL_OK) << err;
	EXPECT_TRUE(writes.empty());
	EXPECT_NE(out.find("unchanged (driver nvme)"), std::string::npos) << out;
}

TEST_F(VfdmactlTest, UnbindBindsTheOriginalDriverWhenTheProbeDoesNot)
{
	ASSERT_EQ(run({ "bind", A }), CTL_OK) << err;
	probe_ignores_native = true;
	writes.clear();
	ASSERT_EQ(run({ "unbind", A }, 100), CTL_OK) << err;
	ASSERT_FALSE(writes.empty());
	EXPECT_EQ(writes.back(), "sys/bus/pci/drivers/nvme/bind=" + std::string(A));
	EXPECT_EQ(fs::read_symlink(devdir(A) / "driver").filename(), "nvme");
}

TEST_F(VfdmactlTest, UnbindWithoutStateTakesWhatTheKernelGives)
{
	// B was bound by someone else: no state file; the re-probe picks nvme
	ASSERT_EQ(run({ "unbind", "--json", B }), CTL_OK) << err;
	struct mj *doc = json();
	EXPECT_EQ(str(mj_get(find_dev(doc, B), "driver")), "nvme");
	mj_free(doc);
}

TEST_F(VfdmactlTest, RefusalsAndExitCodes)
{
	EXPECT_EQ(run({ "bind", "0000:99:00.0" }), CTL_ENODEV);
	EXPECT_NE(err.find("no such PCI device"), std::string::npos) << err;
	EXPECT_EQ(run({ "unbind", "0000:99:00.0" }), CTL_ENODEV);
	EXPECT_EQ(run({ "bind", "nonsense" }), CTL_EUSAGE);
	EXPECT_EQ(run({ "bind" }), CTL_EUSAGE);
	EXPECT_EQ(run({ "bind", "--driver", "../x", A }), CTL_EUSAGE);
	EXPECT_EQ(run({ "bind", "--timeout", "x", A }), CTL_EUSAGE);
	EXPECT_TRUE(writes.empty());

	// no IOMMU group: vfio-pci could not take it, unless in no-IOMMU mode
	add("0000:05:00.0", 0x020000, "e1000e", -1, 0);
	EXPECT_EQ(run({ "bind", "05:00.0" }), CTL_ENOTSUP);
	EXPECT_NE(err.find("no IOMMU group"), std::string::npos) << err;
	EXPECT_TRUE(writes.empty());
	put("sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
	EXPECT_EQ(run({ "bind", "--timeout", "0.05", "05:00.0" }), CTL_EFAIL) << "no group appears";
	// after the timeout the device went back to its own driver
	EXPECT_NE(err.find("timed out after 50 ms waiting for vfio-pci (driver now e1000e)"),
		  std::string::npos) << err;
	EXPECT_EQ(writes.back(), "sys/bus/pci/drivers_probe=0000:05:00.0");
	writes.clear();

	// vfio-pci not loaded
	fs::remove_all(root / "sys/bus/pci/drivers/vfio-pci");
	EXPECT_EQ(run({ "bind", A }), CTL_ENOTSUP);
	EXPECT_NE(err.find("modprobe vfio-pci"), std::string::npos) << err;
	EXPECT_TRUE(writes.empty());
}

TEST_F(VfdmactlTest, BindRefusesAMountedDiskUnlessForced)
{
	fs::create_directories(devdir(A) / "nvme/nvme0/nvme0n1");
	put("proc/mounts", "sysfs /sys sysfs rw 0 0\n/dev/nvme0n1p2 /data ext4 rw 0 0\n");
	EXPECT_EQ(run({ "bind", A }), CTL_EBUSY);
	EXPECT_NE(err.find("/dev/nvme0n1p2 is mounted"), std::string::npos) << err;
	EXPECT_TRUE(writes.empty());
	EXPECT_EQ(run({ "bind", "--force", A }), CTL_OK) << err;
}

TEST_F(VfdmactlTest, UnbindRefusesAnOpenVfioDevice)
{
	fs::create_directories(root / "proc/4242/fd");
	fs::create_symlink(root / "dev/vfio/devices/vfio0", root / "proc/4242/fd/7");
	EXPECT_EQ(run({ "unbind", B }), CTL_EBUSY);
	EXPECT_NE(err.find("process 4242"), std::string::npos) << err;
	EXPECT_TRUE(writes.empty());
	EXPECT_EQ(run({ "unbind", "--force", B }), CTL_OK) << err;
}

TEST_F(VfdmactlTest, BindTimesOutWhenTheKernelDoesNotBind)
{
	kernel_dead = true;
	EXPECT_EQ(run({ "bind", "--json", A }, 50), CTL_EFAIL);
	EXPECT_NE(err.find("timed out"), std::string::npos) << err;
	struct mj *doc = json();
	EXPECT_EQ(str(mj_get(find_dev(doc, A), "action")), "failed");
	EXPECT_NE(str(mj_get(find_dev(doc, A), "error")).find("timed out"), std::string::npos);
	mj_free(doc);
}

TEST_F(VfdmactlTest, InfoOnTheSimBackend)
{
	ASSERT_EQ(run({ "info", "--backend", "sim", "--json" }), CTL_OK) << err;
	struct mj *doc = json();
	ASSERT_NE(doc, nullptr);
	EXPECT_EQ(str(mj_get(doc, "backend")), "sim");
	const struct mj *pgs = mj_get(doc, "pgsizes");
	bool has4k = false;
	for (size_t i = 0; i < mj_len(pgs); i++)
		has4k = has4k || mj_num(mj_at(pgs, i), 0) == 4096;
	EXPECT_TRUE(has4k);
	EXPECT_EQ(str(mj_get(doc, "pgsizes_text")), "4K 2M 1G");
	EXPECT_GE(mj_len(mj_get(doc, "iova_ranges")), 1u);
	EXPECT_EQ(str(mj_get(mj_at(mj_get(doc, "iova_ranges"), 0), "first")).rfind("0x", 0), 0u);
	EXPECT_TRUE(mj_has_str(mj_get(mj_get(doc, "dirty"), "caps"), "mark"));
	EXPECT_TRUE(mj_bool(mj_get(mj_get(doc, "dirty"), "mark"), false));
	mj_free(doc);

	ASSERT_EQ(run({ "info", "--backend", "sim" }), CTL_OK) << err;
	EXPECT_NE(out.find("backend:       sim"), std::string::npos) << out;
	EXPECT_EQ(run({ "info", "--backend", "warp" }), CTL_EUSAGE);
	EXPECT_EQ(run({ "info", "0000:99:00.0" }), CTL_ENODEV);
	EXPECT_EQ(run({ "info", A }), CTL_ENOTSUP);
	EXPECT_NE(err.find("not vfio-pci"), std::string::npos) << err;
	EXPECT_EQ(run({ "info", A, B }), CTL_EUSAGE);
}

TEST(VfdmactlJson, StringsAreEscapedAndParseBack)
{
	const char *nasty = "q\"b\\s/\n\t\r\b\f\x01\x1f\x7f é";
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct ctl_json j;
	json_begin(&j, f);
	json_obj(&j, nullptr);
	json_str(&j, "s", nasty);
	json_str(&j, "k\"ey", nullptr);
	json_arr(&j, "empty");
	json_close(&j);
	json_obj(&j, "o");
	json_hex(&j, "h", 0xfee00000ull);
	json_u64(&j, "u", UINT64_MAX);
	json_int_or_null(&j, "n", -1);
	json_bool(&j, "b", true);
	json_close(&j);
	json_close(&j);
	json_end(&j);
	fclose(f);
	std::string text(buf, len);
	free(buf);
	EXPECT_EQ(text.find('\x01'), std::string::npos) << "control characters are escaped";
	char e[128];
	struct mj *doc = mj_parse(text.c_str(), e, sizeof(e));
	ASSERT_NE(doc, nullptr) << e << "\n" << text;
	EXPECT_STREQ(mj_str(mj_get(doc, "s")), nasty);
	EXPECT_TRUE(mj_is_null(mj_get(doc, "k\"ey")));
	EXPECT_EQ(mj_len(mj_get(doc, "empty")), 0u);
	const struct mj *o = mj_get(doc, "o");
	EXPECT_STREQ(mj_str(mj_get(o, "h")), "0xfee00000");
	EXPECT_STREQ(mj_get(o, "u")->str, "18446744073709551615");
	EXPECT_TRUE(mj_is_null(mj_get(o, "n")));
	EXPECT_TRUE(mj_bool(mj_get(o, "b"), false));
	mj_free(doc);
}

TEST(VfdmactlJson, TheTestParserRejectsMalformedJson)
{
	for (const char *bad : { "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "[01]", "\"\x01\"",
				 "\"\\x\"", "[1] 2", "tru", "{\"a\":}", "\"abc", "\"\\" })
		EXPECT_EQ(mj_parse(bad, nullptr, 0), nullptr) << bad;
	struct mj *v = mj_parse(" {\"a\": [1, -2.5e3, \"\\u00e9\\ud83d\\ude00\"]} ", nullptr, 0);
	ASSERT_NE(v, nullptr);
	EXPECT_EQ(mj_num(mj_at(mj_get(v, "a"), 1), 0), -2500);
	EXPECT_STREQ(mj_str(mj_at(mj_get(v, "a"), 2)), "\xc3\xa9\xf0\x9f\x98\x80");
	mj_free(v);
}

TEST(VfdmactlBdf, Normalize)
{
	char b[16];
	ASSERT_TRUE(ctl_bdf_normalize("41:00.0", b));
	EXPECT_STREQ(b, "0000:41:00.0");
	ASSERT_TRUE(ctl_bdf_normalize("0001:AF:1F.7", b));
	EXPECT_STREQ(b, "0001:af:1f.7");
	for (const char *bad : { "", "41:00", "41:00.8", "0000:41:00.0x", "g1:00.0", "0000-41:00.0",
				 "41.00.0" })
		EXPECT_FALSE(ctl_bdf_normalize(bad, b)) << bad;
}
