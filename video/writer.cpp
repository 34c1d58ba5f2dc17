// FFmpeg encoding. As in reader.cpp, each FFmpeg object is owned by a unique_ptr.
#include "video/writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <iterator>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "video/ffmpeg_common.h"
#include "video/rgb_ops.h"

namespace xattn::video {
namespace {

std::string av_error(int code) { return av_error_text(code); }

struct OutputFree {  // closes the file (if open) and frees the muxer context
  void operator()(AVFormatContext* c) const {
    if (c->pb && !(c->oformat->flags & AVFMT_NOFILE)) avio_closep(&c->pb);
    avformat_free_context(c);
  }
};
using CodecPtr = CodecContextPtr;
using OutputPtr = std::unique_ptr<AVFormatContext, OutputFree>;

void check_view(const FrameView& f, const char* what) {
  XATTN_CHECK_IN("video", f.count >= 0 && f.height > 0 && f.width > 0 && (f.count == 0 || f.rgb),
                 what, ": expected frames of positive size, got ", f.count, " x ", f.height, " x ", f.width);
}

}  // namespace

struct VideoWriter::Impl {
  std::string path, tmp_path;
  WriterOptions opts;
  int in_w = 0, in_h = 0, out_w = 0, out_h = 0;
  std::string codec_name;
  OutputPtr oc;
  CodecPtr enc;
  AVStream* st = nullptr;
  FramePtr yuv;
  PacketPtr pkt;
  SwsPtr sws;
  int64_t next_pts = 0;
  bool closed = false;

  std::string where() const { return str_cat(path, " (", codec_name, ")"); }

  void open() {
    route_ffmpeg_logs();
    const AVOutputFormat* ofmt = av_guess_format(nullptr, path.c_str(), nullptr);
    if (!ofmt)
      throw Error("video", str_cat(path, ": cannot tell the container from the file name (use .mp4, .mkv, .mov, .avi)"));
    tmp_path = path + ".partial";
    AVFormatContext* raw = nullptr;
    int rc = avformat_alloc_output_context2(&raw, ofmt, nullptr, tmp_path.c_str());
    if (rc < 0 || !raw) throw Error("video", str_cat(path, ": cannot set up the ", ofmt->name, " muxer: ", av_error(rc)));
    oc.reset(raw);

    const AVCodec* codec = nullptr;
    if (opts.codec == "auto" || opts.codec == "libx264") {
      codec = avcodec_find_encoder_by_name("libx264");
      if (!codec && opts.codec == "libx264")
        throw Error("video", str_cat(path, ": this FFmpeg has no libx264 encoder (use codec \"auto\" or \"mpeg4\")"));
      if (!codec) XATTN_LOG_INFO("video: libx264 not available; writing MPEG-4 Part 2 instead");
    } else if (opts.codec != "mpeg4") {
      throw Error("video", str_cat(path, ": codec must be auto, libx264 or mpeg4, got '", opts.codec, "'"));
    }
    if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) throw Error("video", str_cat(path, ": this FFmpeg has neither libx264 nor an MPEG-4 encoder"));
    codec_name = codec->name;
    if (avformat_query_codec(ofmt, codec->id, FF_COMPLIANCE_NORMAL) != 1)
      throw Error("video", str_cat(path, ": the ", ofmt->name, " container cannot hold ", codec_name, " video"));

    XATTN_CHECK_IN("video", opts.fps > 0 && std::isfinite(opts.fps), path, ": fps must be > 0, got ", opts.fps);
    XATTN_CHECK_IN("video", opts.crf >= 0 && opts.crf <= 51, path, ": crf must be in [0, 51], got ", opts.crf);
    XATTN_CHECK_IN("video", opts.gop >= 0, path, ": gop must be >= 0, got ", opts.gop);
    if (opts.even == EvenSize::kPad) {
      out_w = in_w + (in_w & 1);
      out_h = in_h + (in_h & 1);
    } else {
      out_w = in_w & ~1;
      out_h = in_h & ~1;
      XATTN_CHECK_IN("video", out_w > 0 && out_h > 0, path, ": ", in_w, "x", in_h, " is too small to crop to even size");
    }

    enc.reset(avcodec_alloc_context3(codec));
    if (!enc) throw Error("video", str_cat(where(), ": out of memory allocating the encoder"));
    AVRational rate = av_d2q(opts.fps, 1001000);
    enc->width = out_w;
    enc->height = out_h;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->framerate = rate;
    enc->time_base = av_inv_q(rate);
    enc->sample_aspect_ratio = AVRational{1, 1};
    if (opts.gop > 0) enc->gop_size = opts.gop;
    enc->thread_count = opts.threads;
    // BT.709 for HD, BT.601 below, tagged so players convert back with the same matrix.
    bool hd = out_h >= 720;
    enc->colorspace = hd ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M;
    enc->color_primaries = hd ? AVCOL_PRI_BT709 : AVCOL_PRI_SMPTE170M;
    enc->color_trc = hd ? AVCOL_TRC_BT709 : AVCOL_TRC_SMPTE170M;
    enc->color_range = AVCOL_RANGE_MPEG;
    if (codec_name == "libx264") {
      static const char* kPresets[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                       "medium",    "slow",      "slower",   "veryslow", "placebo"};
      if (std::find(std::begin(kPresets), std::end(kPresets), opts.preset) == std::end(kPresets))
        throw Error("video", str_cat(path, ": unknown preset '", opts.preset,
                                     "' (ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow)"));
      rc = av_opt_set(enc->priv_data, "preset", opts.preset.c_str(), 0);
      if (rc < 0) throw Error("video", str_cat(where(), ": unknown preset '", opts.preset, "': ", av_error(rc)));
      av_opt_set(enc->priv_data, "crf", std::to_string(opts.crf).c_str(), 0);
    } else {
      // MPEG-4 Part 2 has no CRF; a fixed quantiser in 2..31 gives a comparable quality knob.
      int q = std::max(2, std::min(31, static_cast<int>(std::lround(opts.crf / 6.0))));
      enc->flags |= AV_CODEC_FLAG_QSCALE;
      enc->global_quality = FF_QP2LAMBDA * q;
    }
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    rc = avcodec_open2(enc.get(), codec, nullptr);
    if (rc < 0) throw Error("video", str_cat(where(), ": cannot open the encoder: ", av_error(rc)));

    st = avformat_new_stream(oc.get(), nullptr);
    if (!st) throw Error("video", str_cat(where(), ": cannot add a video stream"));
    rc = avcodec_parameters_from_context(st->codecpar, enc.get());
    if (rc < 0) throw Error("video", str_cat(where(), ": ", av_error(rc)));
    st->time_base = enc->time_base;
    st->avg_frame_rate = rate;
    st->r_frame_rate = rate;

    if (!(oc->oformat->flags & AVFMT_NOFILE)) {
      rc = avio_open(&oc->pb, tmp_path.c_str(), AVIO_FLAG_WRITE);
      if (rc < 0) throw Error("video", str_cat(path, ": cannot create ", tmp_path, ": ", av_error(rc)));
    }
    AVDictionary* mux_opts = nullptr;
    std::string fname = oc->oformat->name;
    if (fname.find("mp4") != std::string::npos || fname.find("mov") != std::string::npos)
      av_dict_set(&mux_opts, "movflags", "+faststart", 0);  // index first: playable while downloading
    rc = avformat_write_header(oc.get(), &mux_opts);
    av_dict_free(&mux_opts);
    if (rc < 0) throw Error("video", str_cat(where(), ": cannot write the container header: ", av_error(rc)));

    yuv.reset(av_frame_alloc());
    pkt.reset(av_packet_alloc());
    if (!yuv || !pkt) throw Error("video", str_cat(path, ": out of memory"));
    yuv->format = AV_PIX_FMT_YUV420P;
    yuv->width = out_w;
    yuv->height = out_h;
    rc = av_frame_get_buffer(yuv.get(), 0);
    if (rc < 0) throw Error("video", str_cat(where(), ": cannot allocate a frame: ", av_error(rc)));
    sws.reset(sws_getContext(out_w, out_h, AV_PIX_FMT_RGB24, out_w, out_h, AV_PIX_FMT_YUV420P,
                             SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
    if (!sws) throw Error("video", str_cat(where(), ": cannot set up RGB to YUV conversion"));
    const int* table = sws_getCoefficients(hd ? SWS_CS_ITU709 : SWS_CS_ITU601);
    sws_setColorspaceDetails(sws.get(), table, 1, table, 0, 0, 1 << 16, 1 << 16);
  }

  void drain(bool flushing) {
    for (;;) {
      int rc = avcodec_receive_packet(enc.get(), pkt.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc < 0) throw Error("video", str_cat(where(), ": encoding failed: ", av_error(rc)));
      av_packet_rescale_ts(pkt.get(), enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      rc = av_interleaved_write_frame(oc.get(), pkt.get());  // takes the packet's reference
      if (rc < 0) throw Error("video", str_cat(where(), ": writing ", tmp_path, " failed: ", av_error(rc)));
    }
    (void)flushing;
  }

  void encode_one(const uint8_t* rgb) {
    std::vector<uint8_t> fixed;
    const uint8_t* src = rgb;
    if (out_w != in_w || out_h != in_h) {
      if (opts.even == EvenSize::kPad) {
        fixed = pad_edge_rgb(rgb, in_w, in_h, out_w - in_w, out_h - in_h);
        src = fixed.data();
      }
      // kCrop: read the top-left out_w x out_h with the input stride below.
    }
    int stride = (src == rgb) ? in_w * 3 : out_w * 3;
    int rc = av_frame_make_writable(yuv.get());
    if (rc < 0) throw Error("video", str_cat(where(), ": ", av_error(rc)));
    const uint8_t* planes[4] = {src, nullptr, nullptr, nullptr};
    int strides[4] = {stride, 0, 0, 0};
    sws_scale(sws.get(), planes, strides, 0, out_h, yuv->data, yuv->linesize);
    yuv->pts = next_pts++;
    rc = avcodec_send_frame(enc.get(), yuv.get());
    if (rc < 0) throw Error("video", str_cat(where(), ": encoding failed: ", av_error(rc)));
    drain(false);
  }
};

VideoWriter::VideoWriter(const std::string& path, int width, int height, WriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  XATTN_CHECK_IN("video", width > 0 && height > 0, path, ": frame size must be positive, got ", width, "x", height);
  impl_->path = path;
  impl_->opts = std::move(options);
  impl_->in_w = width;
  impl_->in_h = height;
  try {
    impl_->open();
  } catch (...) {
    impl_->oc.reset();
    std::error_code ec;
    std::filesystem::remove(impl_->tmp_path, ec);
    throw;
  }
}

VideoWriter::~VideoWriter() {
  if (!impl_ || impl_->closed) return;
  // Not closed (an exception or a cancel): drop the partial file.
  impl_->oc.reset();
  std::error_code ec;
  std::filesystem::remove(impl_->tmp_path, ec);
}

void VideoWriter::write(const FrameView& frames) {
  Impl& m = *impl_;
  XATTN_CHECK_IN("video", !m.closed, m.path, ": write() after close()");
  check_view(frames, m.path.c_str());
  XATTN_CHECK_IN("video", frames.width == m.in_w && frames.height == m.in_h, m.path, ": frames are ",
                 frames.width, "x", frames.height, " but the writer was opened for ", m.in_w, "x", m.in_h);
  const int64_t bytes = int64_t(frames.height) * frames.width * 3;
  for (int64_t i = 0; i < frames.count; ++i) m.encode_one(frames.rgb + i * bytes);
}

void VideoWriter::close() {
  Impl& m = *impl_;
  if (m.closed) return;
  XATTN_CHECK_IN("video", m.next_pts > 0, m.path, ": no frames were written");
  int rc = avcodec_send_frame(m.enc.get(), nullptr);
  if (rc < 0 && rc != AVERROR_EOF) throw Error("video", str_cat(m.where(), ": flushing failed: ", av_error(rc)));
  m.drain(true);
  rc = av_write_trailer(m.oc.get());
  if (rc < 0) throw Error("video", str_cat(m.where(), ": cannot finish the file: ", av_error(rc)));
  m.oc.reset();  // closes the file
  std::error_code ec;
  std::filesystem::rename(m.tmp_path, m.path, ec);
  if (ec) throw Error("video", str_cat(m.path, ": cannot move ", m.tmp_path, " into place: ", ec.message()));
  m.closed = true;
}

const std::string& VideoWriter::codec() const { return impl_->codec_name; }
int VideoWriter::encoded_width() const { return impl_->out_w; }
int VideoWriter::encoded_height() const { return impl_->out_h; }
int64_t VideoWriter::frames_written() const { return impl_->next_pts; }

std::string write_video(const std::string& path, const FrameView& frames, const WriterOptions& options) {
  check_view(frames, path.c_str());
  VideoWriter w(path, frames.width, frames.height, options);
  w.write(frames);
  w.close();
  return w.codec();
}

void write_png(const std::string& path, const uint8_t* rgb, int width, int height) {
  route_ffmpeg_logs();
  XATTN_CHECK_IN("video", rgb && width > 0 && height > 0, path, ": bad image ", width, "x", height);
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  if (!codec) throw Error("video", str_cat(path, ": this FFmpeg has no PNG encoder"));
  CodecPtr enc(avcodec_alloc_context3(codec));
  FramePtr frame(av_frame_alloc());
  PacketPtr pkt(av_packet_alloc());
  if (!enc || !frame || !pkt) throw Error("video", str_cat(path, ": out of memory"));
  enc->width = width;
  enc->height = height;
  enc->pix_fmt = AV_PIX_FMT_RGB24;
  enc->time_base = AVRational{1, 1};
  int rc = avcodec_open2(enc.get(), codec, nullptr);
  if (rc < 0) throw Error("video", str_cat(path, ": cannot open the PNG encoder: ", av_error(rc)));
  frame->format = AV_PIX_FMT_RGB24;
  frame->width = width;
  frame->height = height;
  rc = av_frame_get_buffer(frame.get(), 0);
  if (rc < 0) throw Error("video", str_cat(path, ": ", av_error(rc)));
  for (int y = 0; y < height; ++y)
    std::copy_n(rgb + static_cast<int64_t>(y) * width * 3, width * 3, frame->data[0] + static_cast<int64_t>(y) * frame->linesize[0]);
  frame->pts = 0;
  rc = avcodec_send_frame(enc.get(), frame.get());
  if (rc >= 0) rc = avcodec_send_frame(enc.get(), nullptr);
  if (rc < 0) throw Error("video", str_cat(path, ": PNG encoding failed: ", av_error(rc)));
  std::string data;
  while ((rc = avcodec_receive_packet(enc.get(), pkt.get())) >= 0) {
    data.append(reinterpret_cast<const char*>(pkt->data), pkt->size);
    av_packet_unref(pkt.get());
  }
  if (rc != AVERROR_EOF) throw Error("video", str_cat(path, ": PNG encoding failed: ", av_error(rc)));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) throw Error("video", str_cat(path, ": cannot write the file"));
}

std::vector<std::string> write_pngs(const std::string& dir, const FrameView& frames, const std::string& prefix) {
  check_view(frames, dir.c_str());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("video", str_cat(dir, ": cannot create the directory: ", ec.message()));
  std::vector<std::string> paths;
  const int64_t bytes = int64_t(frames.height) * frames.width * 3;
  for (int64_t i = 0; i < frames.count; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "%05lld.png", static_cast<long long>(i));
    std::string p = (std::filesystem::path(dir) / (prefix + name)).string();
    write_png(p, frames.rgb + i * bytes, frames.width, frames.height);
    paths.push_back(p);
  }
  return paths;
}

void write_contact_sheet(const std::string& path, const FrameView& frames, int columns, int thumb_width) {
  check_view(frames, path.c_str());
  XATTN_CHECK_IN("video", frames.count > 0, path, ": no frames for a contact sheet");
  XATTN_CHECK_IN("video", columns > 0 && thumb_width > 0, path, ": columns and thumbnail width must be > 0");
  int tw = std::min(thumb_width, frames.width);
  int th = std::max(1, static_cast<int>(std::lround(double(frames.height) * tw / frames.width)));
  int cols = static_cast<int>(std::min<int64_t>(columns, frames.count));
  int rows = static_cast<int>((frames.count + cols - 1) / cols);
  const int gap = 2;
  int W = cols * tw + (cols + 1) * gap, H = rows * th + (rows + 1) * gap;
  std::vector<uint8_t> sheet(static_cast<size_t>(W) * H * 3, 32);
  const int64_t bytes = int64_t(frames.height) * frames.width * 3;
  for (int64_t i = 0; i < frames.count; ++i) {
    int r = static_cast<int>(i / cols), c = static_cast<int>(i % cols);
    uint8_t* dst = sheet.data() + (static_cast<int64_t>(gap + r * (th + gap)) * W + gap + c * (tw + gap)) * 3;
    downscale_area_rgb(frames.rgb + i * bytes, frames.width, frames.height, dst, tw, th, W * 3);
  }
  write_png(path, sheet.data(), W, H);
}

}  // namespace xattn::video
