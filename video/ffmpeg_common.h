// Pieces shared by reader.cpp and writer.cpp. FFmpeg types appear only as forward
// declarations, so this header (like every video/ header) compiles without FFmpeg's headers.
#pragma once

#include <memory>
#include <string>

struct AVCodecContext;
struct AVFrame;
struct AVPacket;
struct SwsContext;

namespace xattn::video {

// FFmpeg prints to stderr by default. Once called, its warnings and errors go to xattn's log
// at debug level instead (`--log-level debug` shows them). Process-wide, like av_log itself.
void route_ffmpeg_logs();

// av_strerror's text for an FFmpeg error code.
std::string av_error_text(int code);

// Owners of FFmpeg objects (each calls the matching free function).
struct CodecContextFree {
  void operator()(AVCodecContext* c) const;
};
struct FrameFree {
  void operator()(AVFrame* f) const;
};
struct PacketFree {
  void operator()(AVPacket* p) const;
};
struct SwsFree {
  void operator()(SwsContext* s) const;
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;

}  // namespace xattn::video
