#include "pipelines/text/chat_template.h"

#include <algorithm>

#include "core/error.h"

namespace xattn::text {

std::string render_qwen2_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  XATTN_CHECK_IN("chat", !messages.empty(), "the conversation has no messages");
  std::string out;
  if (messages.front().role != "system" && !options.default_system.empty())
    out += "<|im_start|>system\n" + options.default_system + "<|im_end|>\n";
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    XATTN_CHECK_IN("chat", m.role == "system" || m.role == "user" || m.role == "assistant", "message ", i,
                   ": role must be system, user or assistant, got '", m.role, "'");
    out += "<|im_start|>" + m.role + "\n";
    for (const ChatPart& p : m.parts) {
      if (p.kind == ChatPart::Kind::kText) {
        out += p.text;
        continue;
      }
      XATTN_CHECK_IN("chat", p.pad_tokens >= 0, "message ", i, ": pad_tokens must be >= 0, got ", p.pad_tokens);
      const std::string pad = p.kind == ChatPart::Kind::kVideo ? "<|video_pad|>" : "<|image_pad|>";
      out += "<|vision_start|>";
      for (int64_t k = 0; k < std::max<int64_t>(1, p.pad_tokens); ++k) out += pad;
      out += "<|vision_end|>";
    }
    out += "<|im_end|>\n";
  }
  if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace xattn::text
