#include "video_fixtures.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace xattn::video::testing {

namespace {
void cell_geometry(int w, int h, int bit, int* x0, int* y0, int* cw, int* ch) {
  *cw = w / 8;
  *ch = h / 4;
  *x0 = (bit % 8) * *cw;
  *y0 = (bit / 8) * *ch;
}
}  // namespace

void draw_numbered_frame(uint8_t* rgb, int w, int h, int64_t index) {
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = rgb + (static_cast<int64_t>(y) * w + x) * 3;
      double t = static_cast<double>(index);
      p[0] = static_cast<uint8_t>(128 + 60 * std::sin(0.15 * x + 0.2 * t));
      p[1] = static_cast<uint8_t>(128 + 60 * std::sin(0.11 * y - 0.1 * t));
      p[2] = static_cast<uint8_t>(128 + 50 * std::cos(0.07 * (x + y) + 0.05 * t));
    }
  for (int bit = 0; bit < 16; ++bit) {
    int x0, y0, cw, ch;
    cell_geometry(w, h, bit, &x0, &y0, &cw, &ch);
    uint8_t v = ((index >> bit) & 1) ? 235 : 20;
    for (int y = y0; y < y0 + ch; ++y)
      for (int x = x0; x < x0 + cw; ++x) {
        uint8_t* p = rgb + (static_cast<int64_t>(y) * w + x) * 3;
        p[0] = p[1] = p[2] = v;
      }
  }
}

int64_t read_frame_number(const uint8_t* rgb, int w, int h) {
  int64_t n = 0;
  for (int bit = 0; bit < 16; ++bit) {
    int x0, y0, cw, ch;
    cell_geometry(w, h, bit, &x0, &y0, &cw, &ch);
    double sum = 0;
    int cnt = 0;
    for (int y = y0 + ch / 4; y < y0 + ch - ch / 4; ++y)
      for (int x = x0 + cw / 4; x < x0 + cw - cw / 4; ++x)
        for (int c = 0; c < 3; ++c, ++cnt) sum += rgb[(static_cast<int64_t>(y) * w + x) * 3 + c];
    double mean = cnt ? sum / cnt : 128;
    if (std::fabs(mean - 128) < 40) return -1;
    if (mean > 128) n |= int64_t(1) << bit;
  }
  return n;
}

Frames numbered_clip(int w, int h, int64_t count, int64_t first) {
  Frames f;
  f.count = count;
  f.width = w;
  f.height = h;
  f.rgb.resize(static_cast<size_t>(count) * w * h * 3);
  for (int64_t i = 0; i < count; ++i) draw_numbered_frame(f.frame(i), w, h, first + i);
  return f;
}

Frames natural_clip(int w, int h, int64_t count) {
  Frames f;
  f.count = count;
  f.width = w;
  f.height = h;
  f.rgb.resize(static_cast<size_t>(count) * w * h * 3);
  for (int64_t i = 0; i < count; ++i) {
    uint8_t* img = f.frame(i);
    double t = double(i);
    double bx = w * (0.3 + 0.2 * std::sin(0.1 * t)), by = h * (0.5 + 0.2 * std::cos(0.13 * t));
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        double u = double(x) / w, v = double(y) / h;
        double blob = std::exp(-((x - bx) * (x - bx) + (y - by) * (y - by)) / (0.02 * w * w));
        double tex = 6.0 * std::sin(0.9 * x + 0.3 * y) * std::sin(0.5 * y - 0.2 * t);
        double r = 90 + 100 * u + 60 * blob + tex;
        double g = 70 + 80 * v + 40 * std::sin(3 * u + 0.05 * t) + tex;
        double b = 120 + 50 * std::cos(2 * (u + v) - 0.04 * t) - 50 * blob + tex;
        uint8_t* p = img + (static_cast<int64_t>(y) * w + x) * 3;
        p[0] = static_cast<uint8_t>(std::clamp(r, 0.0, 255.0));
        p[1] = static_cast<uint8_t>(std::clamp(g, 0.0, 255.0));
        p[2] = static_cast<uint8_t>(std::clamp(b, 0.0, 255.0));
      }
  }
  return f;
}

int run(const std::string& command) {
  int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

bool have_ffmpeg() { return run("ffmpeg -hide_banner -version >/dev/null 2>&1") == 0; }

bool ffmpeg_encode(const Frames& frames, double fps, const std::string& args, const std::string& out,
                   std::string* log) {
  std::string err = out + ".ffmpeg.log";
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.6f", fps);
  std::string cmd = "ffmpeg -hide_banner -loglevel error -y -f rawvideo -pix_fmt rgb24 -s " +
                    std::to_string(frames.width) + "x" + std::to_string(frames.height) + " -r " + rate +
                    " -i - " + args + " '" + out + "' 2>'" + err + "'";
  FILE* p = popen(cmd.c_str(), "w");
  if (!p) return false;
  fwrite(frames.rgb.data(), 1, frames.rgb.size(), p);
  int rc = pclose(p);
  if (log) {
    FILE* f = fopen(err.c_str(), "r");
    log->clear();
    if (f) {
      char buf[512];
      size_t n;
      while ((n = fread(buf, 1, sizeof(buf), f)) > 0) log->append(buf, n);
      fclose(f);
    }
  }
  return rc == 0;
}

Frames ffmpeg_decode(const std::string& path, int w, int h) {
  Frames f;
  f.width = w;
  f.height = h;
  std::string cmd = "ffmpeg -hide_banner -loglevel error -i '" + path + "' -f rawvideo -pix_fmt rgb24 -";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return f;
  std::vector<uint8_t> buf(static_cast<size_t>(w) * h * 3);
  while (fread(buf.data(), 1, buf.size(), p) == buf.size()) {
    f.rgb.insert(f.rgb.end(), buf.begin(), buf.end());
    ++f.count;
  }
  pclose(p);
  return f;
}

double psnr(const uint8_t* a, const uint8_t* b, int64_t n) {
  double se = 0;
  for (int64_t i = 0; i < n; ++i) {
    double d = double(a[i]) - double(b[i]);
    se += d * d;
  }
  double mse = se / double(n);
  return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

std::string temp_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(XATTN_TEST_TMPDIR) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace xattn::video::testing
