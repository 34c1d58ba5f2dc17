#include <gtest/gtest.h>

#include "core/error.h"
#include "pipelines/text/chat_template.h"

using namespace xattn::text;

// The VideoMME prompt of ../shared/reference/qwen2-vl-videomme.md, character for character.
TEST(ChatTemplate, Qwen2VideoQuestionPrompt) {
  const std::string body =
      "\nThese are the frames of a video. Select the best answer to the following multiple-choice question based "
      "on the video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
      "Question: What is shown?\nA. a cat\nB. a dog\nC. a car\nD. a tree\nAnswer: ";
  const std::string got = render_qwen2_chat({{"user", {ChatPart::Video(), ChatPart::Text(body)}}});
  const std::string want =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
      "<|vision_start|><|video_pad|><|vision_end|>" + body + "<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(got, want);
}

TEST(ChatTemplate, PadsExpandAndSystemIsKept) {
  const std::string got = render_qwen2_chat(
      {{"system", {ChatPart::Text("Be brief.")}}, {"user", {ChatPart::Image(3), ChatPart::Text("Hi")}},
       {"assistant", {ChatPart::Text("Hello")}}},
      ChatTemplateOptions{"ignored when a system message exists", false});
  EXPECT_EQ(got,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|>"
            "<|image_pad|><|vision_end|>Hi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n");
  // Qwen2-VL: t*h*w/4 video pads, e.g. 8 temporal groups of 12 x 16 patches -> 384.
  const std::string v = render_qwen2_chat({{"user", {ChatPart::Video(384)}}});
  size_t n = 0;
  for (size_t p = v.find("<|video_pad|>"); p != std::string::npos; p = v.find("<|video_pad|>", p + 1)) ++n;
  EXPECT_EQ(n, 384u);
}

TEST(ChatTemplate, BadInputsNameTheProblem) {
  EXPECT_THROW(render_qwen2_chat({}), xattn::Error);
  try {
    render_qwen2_chat({{"tool", {ChatPart::Text("x")}}});
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("role must be system, user or assistant, got 'tool'"), std::string::npos);
  }
}
