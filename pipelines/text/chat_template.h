// Chat prompts in the Qwen2 / Qwen2-VL format (the "chatml" template of their tokenizer_config):
//
//   <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
//   <|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Describe it.<|im_end|>\n
//   <|im_start|>assistant\n
//
// A system message is inserted when the conversation does not start with one. Image and video
// parts become <|vision_start|><|image_pad|>/<|video_pad|><|vision_end|>; with `pad_tokens` > 0 the
// pad is repeated that many times (Qwen2-VL puts one per merged 2x2 patch group: t*h*w/4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xattn::text {

struct ChatPart {
  enum class Kind { kText, kImage, kVideo };
  Kind kind = Kind::kText;
  std::string text;        // kText
  int64_t pad_tokens = 0;  // kImage / kVideo: pad repetitions (0 = one placeholder)

  static ChatPart Text(std::string t) { return {Kind::kText, std::move(t), 0}; }
  static ChatPart Video(int64_t pads = 0) { return {Kind::kVideo, {}, pads}; }
  static ChatPart Image(int64_t pads = 0) { return {Kind::kImage, {}, pads}; }
};

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::vector<ChatPart> parts;
};

struct ChatTemplateOptions {
  std::string default_system = "You are a helpful assistant.";  // empty: insert none
  bool add_generation_prompt = true;                            // end with "<|im_start|>assistant\n"
};

// Throws xattn::Error for an unknown role or an empty conversation.
std::string render_qwen2_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options = {});

}  // namespace xattn::text
