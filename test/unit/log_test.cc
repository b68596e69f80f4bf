// SPDX-License-Identifier: BSD-3-Clause
// Logging: silent by default, levels filter, the sink receives messages.
#include "vfdma_test.h"

#include <string>
#include <vector>

namespace
{
struct Sink {
	std::vector<std::pair<int, std::string>> msgs;
	static void fn(void *ctx, enum vfdma_log_level level, const char *msg)
	{
		static_cast<Sink *>(ctx)->msgs.emplace_back(level, msg);
	}
};
} // namespace

TEST(Log, BadLevelIsRejected)
{
	enum vfdma_log_level before = vfdma_log_get_level();
	EXPECT_EQ(vfdma_log_set_level((enum vfdma_log_level)99), -EINVAL);
	EXPECT_EQ(vfdma_log_set_level((enum vfdma_log_level)-1), -EINVAL);
	EXPECT_EQ(vfdma_log_get_level(), before);
}

TEST(Log, LevelsFilterAndSinkReceives)
{
	Sink sink;
	enum vfdma_log_level before = vfdma_log_get_level();
	ASSERT_EQ(vfdma_log_set_fn(Sink::fn, &sink), 0);

	ASSERT_EQ(vfdma_log_set_level(VFDMA_LOG_OFF), 0);
	VFD_ERR("not shown %d", 1);
	EXPECT_TRUE(sink.msgs.empty());

	ASSERT_EQ(vfdma_log_set_level(VFDMA_LOG_WARN), 0);
	VFD_ERR("error %d", 2);
	VFD_WARN("warn %s", "x");
	VFD_INFO("info is below warn");
	ASSERT_EQ(sink.msgs.size(), 2u);
	EXPECT_EQ(sink.msgs[0].first, VFDMA_LOG_ERROR);
	EXPECT_EQ(sink.msgs[0].second, "error 2");
	EXPECT_EQ(sink.msgs[1].second, "warn x");

	for (int i = 0; i < 3; i++)
		VFD_LOG_ONCE(VFDMA_LOG_WARN, "once");
	EXPECT_EQ(sink.msgs.size(), 3u);

	vfdma_log_set_fn(nullptr, nullptr);
	vfdma_log_set_level(before);
}

TEST(Log, VersionMatchesHeader)
{
	char want[32];
	snprintf(want, sizeof(want), "%d.%d.", VFDMA_VERSION_MAJOR, VFDMA_VERSION_MINOR);
	EXPECT_EQ(strncmp(vfdma_version(), want, strlen(want)), 0) << vfdma_version();
}

// The public entry point for libraries built on vfdma: same level, same
// sink; the OFF level and bad levels are never printed.
TEST(Log, PublicLogFollowsLevelAndSink)
{
	Sink sink;
	enum vfdma_log_level before = vfdma_log_get_level();
	ASSERT_EQ(vfdma_log_set_fn(Sink::fn, &sink), 0);
	ASSERT_EQ(vfdma_log_set_level(VFDMA_LOG_INFO), 0);
	errno = 1234;
	vfdma_log(VFDMA_LOG_INFO, "glue %d", 7);
	EXPECT_EQ(errno, 1234);
	vfdma_log(VFDMA_LOG_DEBUG, "below info");
	vfdma_log(VFDMA_LOG_OFF, "never");
	vfdma_log((enum vfdma_log_level)42, "bad level");
	ASSERT_EQ(sink.msgs.size(), 1u);
	EXPECT_EQ(sink.msgs[0].first, VFDMA_LOG_INFO);
	EXPECT_EQ(sink.msgs[0].second, "glue 7");
	vfdma_log_set_fn(nullptr, nullptr);
	vfdma_log_set_level(before);
}
