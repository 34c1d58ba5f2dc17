#include <gtest/gtest.h>

#include <atomic>
#include <sstream>

#include "cli/args.h"
#include "cli/progress_bar.h"

using xattn::cli::ArgParser;

TEST(Args, ParsesFlagsValuesAndPositionals) {
  std::string file, mode = "dense";
  int steps = 50;
  double tau = 0.9;
  bool json = false;
  std::vector<std::string> sets;
  ArgParser p("x FILE", "test");
  p.positional("FILE", "input", &file);
  p.flag("--mode", "M", "mode", &mode);
  p.flag("--steps", "N", "steps", &steps);
  p.flag("--tau", "T", "threshold", &tau);
  p.toggle("--json", "json", &json);
  p.multi("--set", "K=V", "override", &sets);
  EXPECT_FALSE(p.parse({"in.mp4", "--mode=xattention", "--steps", "30", "--tau", "-0.5", "--json", "--set", "a=1",
                        "--set=b=2"}));
  EXPECT_EQ(file, "in.mp4");
  EXPECT_EQ(mode, "xattention");
  EXPECT_EQ(steps, 30);
  EXPECT_DOUBLE_EQ(tau, -0.5);
  EXPECT_TRUE(json);
  EXPECT_EQ(sets, (std::vector<std::string>{"a=1", "b=2"}));
  const std::string h = p.help();
  EXPECT_NE(h.find("--steps N"), std::string::npos);
  EXPECT_NE(h.find("(default: 30)"), std::string::npos);
}

TEST(Args, UsageErrors) {
  int steps = 1;
  std::string file;
  ArgParser p("x FILE", "test");
  p.positional("FILE", "input", &file);
  p.flag("--steps", "N", "steps", &steps);
  auto msg = [&](std::vector<std::string> a) {
    try {
      p.parse(a);
    } catch (const xattn::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("<none>");
  };
  EXPECT_NE(msg({"f", "--steps", "abc"}).find("--steps: expected an integer, got 'abc'"), std::string::npos);
  EXPECT_NE(msg({"f", "--steps"}).find("--steps needs a value N"), std::string::npos);
  EXPECT_NE(msg({}).find("missing FILE"), std::string::npos);
  EXPECT_NE(msg({"f", "g"}).find("unexpected argument 'g'"), std::string::npos);
  EXPECT_NE(msg({"f", "--stpes", "3"}).find("did you mean --steps?"), std::string::npos);
  EXPECT_TRUE(p.parse({"--help"}));
}

TEST(ProgressBar, RendersRateEtaAndHonoursCancelFlag) {
  xattn::ProgressEvent e;
  e.task = "denoise";
  e.unit = "step";
  e.done = 5;
  e.total = 20;
  e.elapsed_s = 10;
  e.rate = 0.5;
  e.eta_s = 30;
  const std::string line = xattn::cli::ProgressBar::render(e, 20);
  EXPECT_NE(line.find("[#####...............] 5/20 step  25%"), std::string::npos) << line;
  EXPECT_NE(line.find("2.00 s/step"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 30s"), std::string::npos) << line;

  std::ostringstream out;
  std::atomic<bool> stop{false};
  xattn::cli::ProgressBar bar(out, /*tty=*/false, /*interval_s=*/5.0);
  bar.set_cancel_flag(&stop);
  e.elapsed_s = 1;
  EXPECT_TRUE(bar(e));
  e.elapsed_s = 2;  // within the interval: no new line on a non-TTY
  EXPECT_TRUE(bar(e));
  stop = true;
  EXPECT_FALSE(bar(e));
  const std::string printed = out.str();
  EXPECT_EQ(std::count(printed.begin(), printed.end(), '\n'), 1);
  EXPECT_EQ(xattn::cli::format_duration(3723), "1:02:03");
}
