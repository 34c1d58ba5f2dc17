// FFmpeg decoding. Every FFmpeg object is owned by a unique_ptr with its free function, so
// no path (including exceptions) leaks.
#include "video/reader.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "video/ffmpeg_common.h"
#include "video/rgb_ops.h"

namespace xattn::video {
namespace {

std::string av_error(int code) { return av_error_text(code); }

struct FormatClose {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
using FormatPtr = std::unique_ptr<AVFormatContext, FormatClose>;
using CodecPtr = CodecContextPtr;

FormatPtr open_input(const std::string& path) {
  route_ffmpeg_logs();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error("video", str_cat(path, ": no such file"));
  if (std::filesystem::is_directory(path, ec))
    throw Error("video", str_cat(path, ": is a directory, not a video file"));
  AVFormatContext* raw = nullptr;
  int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (rc < 0) throw Error("video", str_cat(path, ": cannot open as a video file: ", av_error(rc)));
  return FormatPtr(raw);
}

double q2d_or(AVRational r, double fallback) {
  return (r.num > 0 && r.den > 0) ? av_q2d(r) : fallback;
}

// Clockwise degrees the display matrix asks for (0/90/180/270), as ffmpeg's autorotate reads it.
int display_rotation(const AVStream* st) {
  const uint8_t* matrix = nullptr;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 31, 102)
  const AVPacketSideData* sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                       st->codecpar->nb_coded_side_data,
                                                       AV_PKT_DATA_DISPLAYMATRIX);
  if (sd && sd->size >= 9 * sizeof(int32_t)) matrix = sd->data;
#else
  size_t size = 0;
  matrix = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (size < 9 * sizeof(int32_t)) matrix = nullptr;
#endif
  if (!matrix) return 0;
  double theta = -std::round(av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix)));
  if (std::isnan(theta)) return 0;
  theta -= 360.0 * std::floor(theta / 360.0 + 0.9 / 360.0);
  int deg = static_cast<int>(std::lround(theta)) % 360;
  if (deg % 90 != 0) {
    XATTN_LOG_WARN("video: rotation of ", deg, " degrees is not a multiple of 90; ignored");
    return 0;
  }
  return deg;
}

}  // namespace

struct VideoReader::Impl {
  std::string path;
  ReaderOptions opts;
  VideoInfo info;
  FormatPtr fmt;
  CodecPtr dec;
  AVStream* st = nullptr;
  PacketPtr pkt;
  FramePtr frame;
  SwsPtr sws;
  std::vector<uint8_t> scratch;  // one converted frame before rotation

  bool have_timeline = false;
  Timeline tl;
  bool timestamps_reliable = true;  // false: frames are matched by decode count
  std::vector<int64_t> frame_pts;   // presentation order
  std::vector<int64_t> key_pts;     // ascending

  // Decoder position.
  bool flushing = false;     // end of input reached, decoder being drained
  bool finished = false;     // decoder fully drained
  int64_t last_pts = std::numeric_limits<int64_t>::min();
  int64_t decoded_since_start = 0;  // frames output since the last rewind (for unreliable timestamps)
  bool at_start = true;
  // While seeking forward to `want_pts`, packets of other frames are decoded with
  // AVDISCARD_NONREF: frames nothing references (most B-frames) are skipped outright.
  // Single-threaded decoders only (see decode_targets).
  bool skip_nonref = false;
  int64_t want_pts = AV_NOPTS_VALUE;
  Stats stats;

  std::string where() const {
    return str_cat(path, ": stream #", info.stream_index, " (", info.codec, ")");
  }

  void open() {
    fmt = open_input(path);
    int rc = avformat_find_stream_info(fmt.get(), nullptr);
    if (rc < 0) throw Error("video", str_cat(path, ": cannot read stream information: ", av_error(rc)));

    int best = av_find_best_stream(fmt.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (best >= 0 && (fmt->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) best = -1;
    std::string kinds;
    for (unsigned i = 0; i < fmt->nb_streams; ++i) {
      const AVStream* s = fmt->streams[i];
      const char* type = av_get_media_type_string(s->codecpar->codec_type);
      kinds += str_cat(kinds.empty() ? "" : ", ", "#", i, " ", type ? type : "unknown", " ",
                       avcodec_get_name(s->codecpar->codec_id),
                       (s->disposition & AV_DISPOSITION_ATTACHED_PIC) ? " (cover image)" : "");
      if (s->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) info.has_audio = true;
      if (best < 0 && s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
          !(s->disposition & AV_DISPOSITION_ATTACHED_PIC))
        best = static_cast<int>(i);
    }
    if (best < 0)
      throw Error("video", str_cat(path, ": no video stream (streams: ", kinds.empty() ? "none" : kinds, ")"));
    st = fmt->streams[best];
    for (unsigned i = 0; i < fmt->nb_streams; ++i)
      if (static_cast<int>(i) != best) fmt->streams[i]->discard = AVDISCARD_ALL;

    const AVCodecParameters* par = st->codecpar;
    info.path = path;
    info.container = fmt->iformat->name;
    info.stream_index = best;
    info.codec = avcodec_get_name(par->codec_id);
    const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
    info.pixel_format = pf ? pf : "unknown";
    info.coded_width = par->width;
    info.coded_height = par->height;
    if (par->width <= 0 || par->height <= 0)
      throw Error("video", str_cat(where(), ": no frame size in the stream (corrupt or unsupported file)"));
    info.rotation = display_rotation(st);
    bool swap = opts.apply_rotation && (info.rotation == 90 || info.rotation == 270);
    info.width = swap ? par->height : par->width;
    info.height = swap ? par->width : par->height;
    info.real_fps = q2d_or(st->r_frame_rate, 0.0);
    info.avg_fps = q2d_or(st->avg_frame_rate, info.real_fps);
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
      info.duration = static_cast<double>(st->duration) * av_q2d(st->time_base);
    else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
      info.duration = static_cast<double>(fmt->duration) / AV_TIME_BASE;
    info.bit_rate = par->bit_rate > 0 ? par->bit_rate : (fmt->bit_rate > 0 ? fmt->bit_rate : 0);
    if (st->nb_frames > 0) {
      info.frame_count = st->nb_frames;
      info.frame_count_exact = true;
    } else {
      info.frame_count = static_cast<int64_t>(std::llround(info.duration * info.avg_fps));
      info.frame_count_exact = false;
    }

    open_decoder(par);
  }

  void open_decoder(const AVCodecParameters* par) {
    int rc = 0;
    const AVCodec* codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
      throw Error("video", str_cat(where(), ": no decoder for codec '", info.codec,
                                   "' in this FFmpeg build (unsupported codec)"));
    dec.reset(avcodec_alloc_context3(codec));
    if (!dec) throw Error("video", str_cat(where(), ": out of memory allocating the decoder"));
    rc = avcodec_parameters_to_context(dec.get(), par);
    if (rc < 0) throw Error("video", str_cat(where(), ": bad codec parameters: ", av_error(rc)));
    dec->thread_count = opts.threads;
    dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    dec->pkt_timebase = st->time_base;
    rc = avcodec_open2(dec.get(), codec, nullptr);
    if (rc < 0) throw Error("video", str_cat(where(), ": cannot open the decoder: ", av_error(rc)));
    pkt.reset(av_packet_alloc());
    frame.reset(av_frame_alloc());
    if (!pkt || !frame) throw Error("video", str_cat(path, ": out of memory"));
  }

  // A second reader of the same file for parallel decoding: skips stream probing and takes
  // the parent's codec parameters and timeline.
  void open_clone(const Impl& parent) {
    path = parent.path;
    opts = parent.opts;
    opts.threads = 1;
    info = parent.info;
    fmt = open_input(path);
    if (static_cast<int>(fmt->nb_streams) <= info.stream_index) {
      int rc = avformat_find_stream_info(fmt.get(), nullptr);
      if (rc < 0 || static_cast<int>(fmt->nb_streams) <= info.stream_index)
        throw Error("video", str_cat(where(), ": stream missing when reopening the file"));
    }
    st = fmt->streams[info.stream_index];
    for (unsigned i = 0; i < fmt->nb_streams; ++i)
      if (static_cast<int>(i) != info.stream_index) fmt->streams[i]->discard = AVDISCARD_ALL;
    open_decoder(parent.st->codecpar);
    have_timeline = true;
    tl = parent.tl;
    timestamps_reliable = parent.timestamps_reliable;
    frame_pts = parent.frame_pts;
    key_pts = parent.key_pts;
  }

  // Scans the stream's packets with a second demuxer (the decoding position is untouched).
  void build_timeline() {
    if (have_timeline) return;
    FormatPtr scan = open_input(path);
    // Streams that only appear while probing (e.g. in MPEG-TS) need the probe on this context too.
    if (static_cast<int>(scan->nb_streams) <= info.stream_index) avformat_find_stream_info(scan.get(), nullptr);
    if (static_cast<int>(scan->nb_streams) <= info.stream_index)
      throw Error("video", str_cat(where(), ": stream missing when reopening the file"));
    for (unsigned i = 0; i < scan->nb_streams; ++i)
      if (static_cast<int>(i) != info.stream_index) scan->streams[i]->discard = AVDISCARD_ALL;
    PacketPtr p(av_packet_alloc());
    std::vector<std::pair<int64_t, bool>> entries;  // (pts, keyframe)
    bool missing_ts = false;
    for (;;) {
      int rc = av_read_frame(scan.get(), p.get());
      if (rc < 0) {
        if (rc != AVERROR_EOF)
          XATTN_LOG_DEBUG("video: ", where(), ": packet scan stopped early: ", av_error(rc));
        break;
      }
      if (p->stream_index == info.stream_index && p->size > 0 && !(p->flags & AV_PKT_FLAG_DISCARD)) {
        int64_t ts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
        if (ts == AV_NOPTS_VALUE) missing_ts = true;
        entries.emplace_back(ts, (p->flags & AV_PKT_FLAG_KEY) != 0);
      }
      av_packet_unref(p.get());
    }
    double tb = av_q2d(st->time_base);
    tl = Timeline{};
    frame_pts.clear();
    key_pts.clear();
    timestamps_reliable = !missing_ts;
    if (timestamps_reliable) {
      for (auto& e : entries) {
        frame_pts.push_back(e.first);
        if (e.second) key_pts.push_back(e.first);
      }
      std::sort(frame_pts.begin(), frame_pts.end());
      std::sort(key_pts.begin(), key_pts.end());
      if (std::adjacent_find(frame_pts.begin(), frame_pts.end()) != frame_pts.end()) {
        XATTN_LOG_DEBUG("video: ", where(), ": repeated timestamps; matching frames by decode order");
        timestamps_reliable = false;
      }
    }
    if (!timestamps_reliable) {
      double fps = info.avg_fps > 0 ? info.avg_fps : 25.0;
      frame_pts.clear();
      key_pts.clear();
      for (size_t i = 0; i < entries.size(); ++i) tl.times.push_back(static_cast<double>(i) / fps);
    } else {
      for (int64_t pts : frame_pts) tl.times.push_back(static_cast<double>(pts - frame_pts.front()) * tb);
    }
    tl.avg_fps = info.avg_fps;
    if (tl.avg_fps <= 0 && tl.times.size() > 1 && tl.times.back() > 0)
      tl.avg_fps = static_cast<double>(tl.times.size() - 1) / tl.times.back();
    info.avg_fps = tl.avg_fps;
    info.frame_count = tl.size();
    info.frame_count_exact = true;
    if (info.duration <= 0) info.duration = tl.duration();
    have_timeline = true;
  }

  void reset_decoder_state() {
    avcodec_flush_buffers(dec.get());
    flushing = false;
    finished = false;
    last_pts = std::numeric_limits<int64_t>::min();
  }

  // Back to the first frame: seek, or reopen the demuxer when the format cannot seek.
  void rewind() {
    ++stats.seeks;
    int64_t target = key_pts.empty() ? (st->start_time != AV_NOPTS_VALUE ? st->start_time : 0) : key_pts.front();
    int rc = av_seek_frame(fmt.get(), info.stream_index, target, AVSEEK_FLAG_BACKWARD);
    if (rc < 0) {
      XATTN_LOG_DEBUG("video: ", where(), ": cannot seek to start (", av_error(rc), "); reopening");
      fmt = open_input(path);
      rc = avformat_find_stream_info(fmt.get(), nullptr);
      if (rc < 0) throw Error("video", str_cat(path, ": cannot reread stream information: ", av_error(rc)));
      st = fmt->streams[info.stream_index];
      for (unsigned i = 0; i < fmt->nb_streams; ++i)
        if (static_cast<int>(i) != info.stream_index) fmt->streams[i]->discard = AVDISCARD_ALL;
    }
    reset_decoder_state();
    decoded_since_start = 0;
    at_start = true;
  }

  // Seeks so that decoding resumes at the keyframe with pts `key` (or earlier).
  void seek_to_key(int64_t key) {
    ++stats.seeks;
    int rc = av_seek_frame(fmt.get(), info.stream_index, key, AVSEEK_FLAG_BACKWARD);
    if (rc < 0) {
      XATTN_LOG_DEBUG("video: ", where(), ": seek failed (", av_error(rc), "); decoding from the start");
      --stats.seeks;
      rewind();
      return;
    }
    reset_decoder_state();
    at_start = false;
  }

  // Next decoded frame into `frame`; false at the end of the stream.
  bool next_frame() {
    for (;;) {
      if (finished) return false;
      int rc = avcodec_receive_frame(dec.get(), frame.get());
      if (rc == 0) {
        ++stats.decoded;
        ++decoded_since_start;
        return true;
      }
      if (rc == AVERROR_EOF) {
        finished = true;
        return false;
      }
      if (rc != AVERROR(EAGAIN))
        throw Error("video", str_cat(where(), ": decoding failed: ", av_error(rc)));
      if (flushing) {  // drained without EOF: treat as the end
        finished = true;
        return false;
      }
      rc = av_read_frame(fmt.get(), pkt.get());
      if (rc < 0) {
        if (rc != AVERROR_EOF)
          XATTN_LOG_DEBUG("video: ", where(), ": reading stopped: ", av_error(rc), " (treated as end of file)");
        flushing = true;
        avcodec_send_packet(dec.get(), nullptr);
        continue;
      }
      if (pkt->stream_index != info.stream_index) {
        av_packet_unref(pkt.get());
        continue;
      }
      ++stats.packets;
      dec->skip_frame = (skip_nonref && pkt->pts != AV_NOPTS_VALUE && pkt->pts != want_pts) ? AVDISCARD_NONREF
                                                                                             : AVDISCARD_DEFAULT;
      rc = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (rc < 0 && rc != AVERROR(EAGAIN))
        XATTN_LOG_DEBUG("video: ", where(), ": skipped a bad packet: ", av_error(rc));
    }
  }

  int64_t frame_ts() const {
    int64_t ts = frame->best_effort_timestamp;
    return ts != AV_NOPTS_VALUE ? ts : frame->pts;
  }

  // Converts the current decoded frame to RGB24 (display size, rotation applied) at dst.
  void convert(uint8_t* dst) {
    int w = frame->width, h = frame->height;
    XATTN_CHECK_IN("video", w > 0 && h > 0, where(), ": decoded a frame without a size");
    int cw = info.coded_width, ch = info.coded_height;  // mid-stream size changes are scaled back
    auto fmt_in = static_cast<AVPixelFormat>(frame->format);
    sws.reset(sws_getCachedContext(sws.release(), w, h, fmt_in, cw, ch, AV_PIX_FMT_RGB24,
                                   SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr,
                                   nullptr));
    if (!sws)
      throw Error("video", str_cat(where(), ": cannot convert pixel format ",
                                   av_get_pix_fmt_name(fmt_in) ? av_get_pix_fmt_name(fmt_in) : "?", " to RGB"));
    int cs = frame->colorspace;
    if (cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_RGB || cs == AVCOL_SPC_RESERVED) cs = SWS_CS_DEFAULT;
    bool full = frame->color_range == AVCOL_RANGE_JPEG || fmt_in == AV_PIX_FMT_YUVJ420P ||
                fmt_in == AV_PIX_FMT_YUVJ422P || fmt_in == AV_PIX_FMT_YUVJ444P || fmt_in == AV_PIX_FMT_YUVJ440P;
    const int* coeffs = sws_getCoefficients(cs);
    sws_setColorspaceDetails(sws.get(), coeffs, full ? 1 : 0, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                             1 << 16, 1 << 16);
    bool rotate = opts.apply_rotation && info.rotation != 0;
    uint8_t* out = dst;
    if (rotate) {
      scratch.resize(static_cast<size_t>(cw) * ch * 3);
      out = scratch.data();
    }
    uint8_t* planes[4] = {out, nullptr, nullptr, nullptr};
    int strides[4] = {cw * 3, 0, 0, 0};
    sws_scale(sws.get(), frame->data, frame->linesize, 0, h, planes, strides);
    if (rotate) rotate_rgb(out, cw, ch, info.rotation, dst);
  }
};

VideoReader::VideoReader(const std::string& path, ReaderOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->opts = options;
  impl_->open();
}
VideoReader::~VideoReader() = default;
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;

const VideoInfo& VideoReader::info() const { return impl_->info; }
const VideoReader::Stats& VideoReader::last_stats() const { return impl_->stats; }

const Timeline& VideoReader::timeline() {
  impl_->build_timeline();
  return impl_->tl;
}

namespace {
struct Target {
  int64_t index;
  std::vector<int64_t> slots;  // positions in the output asking for this frame
};
}  // namespace

// Decodes targets[b, e) (ascending frame index) into `out`; `on_done` runs after each one.
void decode_targets(VideoReader::Impl& m, const std::vector<Target>& targets, size_t b, size_t e, Frames& out,
                    bool sequential, const std::function<void()>& on_done) {
  m.skip_nonref = false;
  if (sequential || !m.at_start) m.rewind();
  for (size_t t = b; t < e; ++t) {
    const int64_t index = targets[t].index;
    const auto& where_to = targets[t].slots;
    uint8_t* first = out.frame(where_to.front());
    if (!m.timestamps_reliable) {
      // Match by decode count from the start.
      if (m.decoded_since_start > index) m.rewind();
      bool found = false;
      while (m.next_frame()) {
        if (m.decoded_since_start - 1 == index) {
          m.convert(first);
          found = true;
          break;
        }
      }
      if (!found)
        throw Error("video", str_cat(m.where(), ": frame ", index, " could not be decoded (stream ended after ",
                                     m.decoded_since_start, " frames; truncated or corrupt file?)"));
    } else {
      const int64_t target = m.frame_pts[index];
      auto kit = std::upper_bound(m.key_pts.begin(), m.key_pts.end(), target);
      bool have_key = kit != m.key_pts.begin();
      int64_t key = have_key ? *(kit - 1) : std::numeric_limits<int64_t>::min();
      if (!sequential) {
        bool behind = m.last_pts >= target;                        // already past it
        bool jump = have_key && key > m.last_pts && !m.at_start;   // a keyframe lies between here and there
        bool from_start_but_far = have_key && m.at_start && key > m.frame_pts.front();
        if (behind) {
          if (have_key) m.seek_to_key(key); else m.rewind();
        } else if (jump || from_start_but_far) {
          m.seek_to_key(key);
        }
      } else if (m.last_pts >= target) {
        m.rewind();
      }
      m.want_pts = target;
      // Frame-threaded decoders pick up skip_frame changes late (a skipped neighbour's picture
      // can come out under the wanted timestamp), so skipping is only used single-threaded.
      m.skip_nonref = !sequential && m.dec->active_thread_type != FF_THREAD_FRAME;
      bool fresh = true;  // first frame after a seek
      bool retried = false;
      bool found = false;
      for (;;) {
        if (!m.next_frame()) break;
        int64_t ts = m.frame_ts();
        if (fresh && ts != AV_NOPTS_VALUE && ts > target && !retried) {
          // The seek landed after the frame (inexact index): decode from the start instead.
          XATTN_LOG_DEBUG("video: ", m.where(), ": seek overshot frame ", index, "; decoding from the start");
          m.rewind();
          retried = true;
          continue;
        }
        fresh = false;
        m.at_start = false;
        if (ts != AV_NOPTS_VALUE) m.last_pts = ts;
        if (ts != AV_NOPTS_VALUE && ts < target) continue;
        if (ts != target)
          XATTN_LOG_DEBUG("video: ", m.where(), ": frame ", index, " (pts ", target, ") missing; using pts ", ts);
        m.convert(first);
        found = true;
        break;
      }
      if (!found)
        throw Error("video", str_cat(m.where(), ": frame ", index, " at ", m.tl.times[index],
                                     " s could not be decoded (truncated or corrupt file?)"));
    }
    for (size_t k = 1; k < where_to.size(); ++k)
      std::memcpy(out.frame(where_to[k]), first, static_cast<size_t>(out.frame_bytes()));
    on_done();
  }
  m.skip_nonref = false;
}

Frames VideoReader::read(const std::vector<int64_t>& indices, ReadMode mode, const ProgressCallback& progress) {
  Impl& m = *impl_;
  m.build_timeline();
  const int64_t total = m.tl.size();
  if (total == 0) throw Error("video", str_cat(m.where(), ": the stream has no frames"));
  for (int64_t i : indices)
    if (i < 0 || i >= total)
      throw Error("video", str_cat(m.where(), ": frame index ", i, " is out of range [0, ", total, ")"));

  Frames out;
  out.count = static_cast<int64_t>(indices.size());
  out.height = m.info.height;
  out.width = m.info.width;
  out.indices = indices;
  out.times.reserve(indices.size());
  for (int64_t i : indices) out.times.push_back(m.tl.times[i]);
  out.rgb.resize(static_cast<size_t>(out.count) * out.frame_bytes());  // not zeroed: every byte is decoded into
  m.stats = Stats{};
  if (indices.empty()) return out;

  // Each distinct frame is decoded once, in presentation order, then copied to every slot asking for it.
  std::map<int64_t, std::vector<int64_t>> by_index;
  for (size_t s = 0; s < indices.size(); ++s) by_index[indices[s]].push_back(static_cast<int64_t>(s));
  std::vector<Target> targets;
  for (auto& [index, slots] : by_index) targets.push_back({index, std::move(slots)});
  Progress prog(progress, "decode", static_cast<int64_t>(targets.size()), "frame");

  const bool sequential = mode == ReadMode::kSequential || !m.timestamps_reliable;
  // Keyframe groups: targets decoded from the same keyframe stay together.
  std::vector<size_t> group_starts;
  if (!sequential) {
    int64_t prev_key = std::numeric_limits<int64_t>::min();
    for (size_t t = 0; t < targets.size(); ++t) {
      auto kit = std::upper_bound(m.key_pts.begin(), m.key_pts.end(), m.frame_pts[targets[t].index]);
      int64_t key = kit == m.key_pts.begin() ? std::numeric_limits<int64_t>::min() : *(kit - 1);
      if (t == 0 || key != prev_key) group_starts.push_back(t);
      prev_key = key;
    }
  }
  int workers = m.opts.parallel_seeks > 0 ? m.opts.parallel_seeks
                                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(workers), group_starts.size() / 2));

  if (sequential || workers < 2) {
    int64_t done = 0;
    decode_targets(m, targets, 0, targets.size(), out, sequential, [&] { prog.update(++done); });
    prog.finish();
    return out;
  }

  // Parallel sparse decoding: each worker opens its own demuxer and single-threaded decoder and
  // takes a contiguous run of keyframe groups. The calling thread reports progress.
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
  std::vector<std::unique_ptr<Impl>> clones(static_cast<size_t>(workers));
  // Contiguous runs of keyframe groups with about equal work each; a group costs the frames
  // from its keyframe to its last target.
  std::vector<double> cost(group_starts.size());
  double total_cost = 0;
  for (size_t g = 0; g < group_starts.size(); ++g) {
    size_t last = (g + 1 < group_starts.size() ? group_starts[g + 1] : targets.size()) - 1;
    int64_t first_pts = m.frame_pts[targets[group_starts[g]].index];
    auto kit = std::upper_bound(m.key_pts.begin(), m.key_pts.end(), first_pts);
    int64_t key_index = 0;
    if (kit != m.key_pts.begin())
      key_index = std::lower_bound(m.frame_pts.begin(), m.frame_pts.end(), *(kit - 1)) - m.frame_pts.begin();
    cost[g] = static_cast<double>(targets[last].index - key_index + 1) + 8.0;  // + a keyframe's extra cost
    total_cost += cost[g];
  }
  std::vector<size_t> split = {0};
  double acc = 0;
  for (size_t g = 0; g < group_starts.size() && static_cast<int>(split.size()) < workers; ++g) {
    acc += cost[g];
    if (acc >= total_cost * static_cast<double>(split.size()) / workers) split.push_back(g + 1);
  }
  split.push_back(group_starts.size());
  workers = static_cast<int>(split.size()) - 1;
  errors.resize(static_cast<size_t>(workers));
  clones.resize(static_cast<size_t>(workers));
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    size_t g0 = split[static_cast<size_t>(w)], g1 = split[static_cast<size_t>(w) + 1];
    if (g0 >= g1) continue;
    size_t b = group_starts[g0], e = g1 < group_starts.size() ? group_starts[g1] : targets.size();
    pool.emplace_back([&, w, b, e] {
      try {
        auto t0 = std::chrono::steady_clock::now();
        auto c = std::make_unique<Impl>();
        c->open_clone(m);
        clones[static_cast<size_t>(w)] = std::move(c);
        Impl& ci = *clones[static_cast<size_t>(w)];
        decode_targets(ci, targets, b, e, out, false, [&] {
          ++done;
          if (stop) throw Cancelled();
        });
        XATTN_LOG_DEBUG("video: ", m.where(), ": worker ", w, " decoded ", ci.stats.decoded, " frames for ", e - b,
                        " targets in ",
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), " s");
      } catch (...) {
        errors[static_cast<size_t>(w)] = std::current_exception();
        stop = true;
      }
    });
  }
  std::exception_ptr first_error;
  try {
    for (;;) {
      int64_t d = done.load();
      bool all_done = d >= static_cast<int64_t>(targets.size()) || stop.load();
      if (d > 0) prog.update(std::min<int64_t>(d, static_cast<int64_t>(targets.size())));
      if (all_done) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (...) {  // cancelled through the progress callback
    first_error = std::current_exception();
    stop = true;
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e && !first_error) first_error = e;
  for (auto& c : clones)
    if (c) {
      m.stats.packets += c->stats.packets;
      m.stats.decoded += c->stats.decoded;
      m.stats.seeks += c->stats.seeks;
    }
  if (first_error) std::rethrow_exception(first_error);
  prog.finish();
  return out;
}

Frames VideoReader::read(const SamplingSpec& spec, const ProgressCallback& progress) {
  return read(sample_indices(spec, timeline()), ReadMode::kSeek, progress);
}

Frames VideoReader::read_all(const ProgressCallback& progress) {
  return read(sample_indices(SamplingSpec{}, timeline()), ReadMode::kSequential, progress);
}

}  // namespace xattn::video
