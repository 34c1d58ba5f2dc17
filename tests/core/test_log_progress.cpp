#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "core/log.h"
#include "core/progress.h"

TEST(Log, LevelsFilterAndSinkReceivesLines) {
  std::vector<std::string> lines;
  xattn::log::set_sink([&](xattn::log::Level, const std::string& m) { lines.push_back(m); });
  xattn::log::set_level(xattn::log::Level::kWarn);
  XATTN_LOG_INFO("hidden ", 1);
  XATTN_LOG_WARN("shown ", 2);
  xattn::log::set_level(xattn::log::Level::kInfo);
  xattn::log::set_sink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "shown 2");
  EXPECT_EQ(xattn::log::parse_level("WARNING"), xattn::log::Level::kWarn);
  try {
    xattn::log::parse_level("loud");
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown log level 'loud'"), std::string::npos);
  }
}

TEST(Progress, RateEtaAndCancel) {
  using Clock = xattn::Progress::Clock;
  Clock::time_point now{};
  std::vector<xattn::ProgressEvent> events;
  bool keep_going = true;
  xattn::Progress p([&](const xattn::ProgressEvent& e) { events.push_back(e); return keep_going; }, "denoise", 10,
                    "step");
  p.set_clock_for_testing([&] { return now; });
  now += std::chrono::seconds(4);
  p.update(2);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_DOUBLE_EQ(events[0].rate, 0.5);
  EXPECT_DOUBLE_EQ(events[0].eta_s, 16.0);
  EXPECT_EQ(events[0].task, "denoise");
  keep_going = false;
  EXPECT_THROW(p.update(3), xattn::Cancelled);
  keep_going = true;
  p.finish();
  EXPECT_TRUE(events.back().finished);
  EXPECT_EQ(events.back().done, 10);
}
