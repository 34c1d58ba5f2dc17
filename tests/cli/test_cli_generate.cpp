// `xattn generate-video` end to end with the embedded tiny model: a playable H.264 MP4 of the right
// frame count and size, run.yaml that reproduces the run, the JSON record, errors before work, and
// Ctrl-C leaving no MP4 behind.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_run.h"
#include "core/safetensors/safetensors.h"

namespace fs = std::filesystem;

namespace {
std::string dir() {
  const std::string d = std::string(XATTN_TEST_TMPDIR) + "/cli_generate";
  ::mkdir(XATTN_TEST_TMPDIR, 0755);
  ::mkdir(d.c_str(), 0755);
  return d;
}
std::string probe(const std::string& file) {
  std::string out;
  FILE* p = popen(("ffprobe -v error -select_streams v:0 -count_frames -show_entries "
                   "stream=codec_name,width,height,nb_read_frames -of csv=p=0 '" + file + "'").c_str(), "r");
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}
const char* kSmall = " --frames 9 --height 64 --width 96 --steps 3 ";
}  // namespace

TEST(CliGenerate, WritesAPlayableMp4WithItsSettingsAndRecord) {
  if (std::system("ffprobe -version >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs the ffprobe CLI";
  const std::string out = dir() + "/kite.mp4";
  const Result r = run(std::string("generate-video --prompt 'A red kite: \"windy\" beach #1'") + kSmall +
                       "--seed 7 --save-latents --set attention.warmup_steps=1 --out " + out);
  ASSERT_EQ(r.code, 0) << r.all;
  EXPECT_EQ(probe(out), "h264,96,64,9\n");
  EXPECT_NE(r.all.find("time: load"), std::string::npos) << r.all;
  EXPECT_NE(r.all.find("mean density of sparse calls"), std::string::npos) << r.all;
  std::ifstream jf(dir() + "/kite.json");
  const auto j = nlohmann::json::parse(jf);
  EXPECT_EQ(j.at("frames"), 9);
  EXPECT_EQ(j.at("per_step").size(), 3u);
  EXPECT_EQ(j.at("per_step")[0].at("dense"), true);
  EXPECT_EQ(j.at("per_step")[1].at("dense"), false);
  EXPECT_EQ(j.at("per_layer").size(), 12u);
  EXPECT_EQ(j.at("prompt"), "A red kite: \"windy\" beach #1");
  // The run.yaml reproduces the latents exactly.
  const Result again = run("generate-video --config " + dir() + "/kite.run.yaml --save-latents --out " + dir() + "/again.mp4");
  ASSERT_EQ(again.code, 0) << again.all;
  const auto a = xattn::safetensors::load(dir() + "/kite.latents.safetensors");
  const auto b = xattn::safetensors::load(dir() + "/again.latents.safetensors");
  EXPECT_TRUE(at::equal(a.at("latents"), b.at("latents")));
}

TEST(CliGenerate, BadInputFailsBeforeWork) {
  const std::string out = dir() + "/bad.mp4";
  Result r = run("generate-video --prompt x --frames 16 --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.all.find("frames: 16 is not 4k + 1"), std::string::npos) << r.all;
  r = run("generate-video --prompt x --width 100 --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.all.find("width: 100 is not a multiple of 16"), std::string::npos) << r.all;
  r = run("generate-video --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.all.find("--prompt"), std::string::npos) << r.all;
  r = run("generate-video --prompt x --set attention.warmup=3 --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.all.find("warmup"), std::string::npos) << r.all;
  r = run("generate-video --prompt x --attention sparse --out " + out);
  EXPECT_EQ(r.code, 2);
  r = run("generate-video --prompt x --negative-prompt blurry --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.all.find("true_cfg_scale > 1"), std::string::npos) << r.all;
  r = run("generate-video --prompt x --model /nonexistent/hunyuan --out " + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.all.find("/nonexistent/hunyuan: not a directory"), std::string::npos) << r.all;
  r = run("generate-video --prompt x --out /nonexistent/dir/v.mp4");
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(fs::exists(out));
  r = run("generate-video --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--policy"), std::string::npos);
}

TEST(CliGenerate, InterruptLeavesNoVideo) {
  const std::string out = dir() + "/interrupted.mp4";
  const std::string err = dir() + "/interrupted.err";
  fs::remove(out);
  fs::remove(err);
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    const int log = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(null, 1);
    dup2(log, 2);
    execl(XATTN_BIN, XATTN_BIN, "generate-video", "--prompt", "x", "--frames", "17", "--height", "128", "--width",
          "128", "--steps", "400", "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Interrupt once the job has started (the prompt encoder's progress line is on stderr; the
  // handler is installed before it), not after a fixed delay: on a loaded machine loading LibTorch
  // alone can take longer than any fixed sleep, and a SIGINT before the handler is installed kills
  // the process instead of cancelling the job.
  bool started = false;
  for (int waited = 0; waited < 120000 && !started; waited += 20) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream f(err);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    started = text.find("encode prompt") != std::string::npos;
  }
  EXPECT_TRUE(started) << "generate-video never started encoding the prompt";
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);  // cancelled
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
}
