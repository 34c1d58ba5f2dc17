#include "video/ffmpeg_common.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
}

#include <cstdarg>
#include <mutex>

#include "core/log.h"

namespace xattn::video {

namespace {
void ffmpeg_log(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_WARNING || !log::enabled(log::Level::kDebug)) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
  std::string s(line);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  XATTN_LOG_DEBUG("ffmpeg: ", s);
}
}  // namespace

void route_ffmpeg_logs() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(ffmpeg_log); });
}

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

void CodecContextFree::operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
void FrameFree::operator()(AVFrame* f) const { av_frame_free(&f); }
void PacketFree::operator()(AVPacket* p) const { av_packet_free(&p); }
void SwsFree::operator()(SwsContext* s) const { sws_freeContext(s); }

}  // namespace xattn::video
