// The embedded tiny model's tokenizer files, compiled into the library (tiny_assets.cpp.in).
#pragma once

namespace xattn::hunyuan::tiny {

extern const char* const kLlmTokenizerJson;  // tokenizer.json, LLaMA-3 pre-tokenizer, 705 tokens
extern const char* const kClipVocabJson;     // CLIP vocab.json, 734 tokens
extern const char* const kClipMerges;        // CLIP merges.txt

}  // namespace xattn::hunyuan::tiny
