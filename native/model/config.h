// SPEC §1 model configuration (medgym-vlm) and the sizes derived from it.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace medgym::model {

struct Config {
  int64_t V = 268;    // vocab_size
  int64_t d = 128;    // d_model
  int64_t L = 4;      // n_layer
  int64_t H = 4;      // n_head
  int64_t T = 1024;   // max_seq (expanded positions)
  int64_t P = 8;      // patch
  int64_t S = 64;     // image_size
  int64_t C = 3;      // channels
  int64_t image_id = 259;  // the <|image|> token id (tokenizer)

  int64_t hd() const { return d / H; }
  int64_t grid() const { return S / P; }
  int64_t Np() const { return grid() * grid(); }   // positions per image
  int64_t cpp() const { return C * P * P; }        // flattened patch size
  int64_t image_bytes() const { return S * S * C; }

  // Throws std::out_of_range naming the field when the config is unusable.
  void validate() const {
    auto need = [](bool ok, const std::string& msg) {
      if (!ok) throw std::out_of_range("invalid policy config: " + msg);
    };
    need(V >= 1 && V <= (1 << 20), "vocab_size must be in [1, 2^20]");
    need(d >= 1 && d <= 16384, "d_model must be in [1, 16384]");
    need(L >= 1 && L <= 256, "n_layer must be in [1, 256]");
    need(H >= 1 && H <= d && d % H == 0, "n_head must divide d_model");
    need(T >= 1 && T <= (1 << 20), "max_seq must be in [1, 2^20]");
    need(P >= 1 && P <= 256, "patch must be in [1, 256]");
    need(S >= P && S <= 4096 && S % P == 0, "image_size must be a multiple of patch, at most 4096");
    need(C == 1 || C == 3, "channels must be 1 or 3");
    need(image_id >= 0 && image_id < V, "the image token id must be < vocab_size");
  }
};

}  // namespace medgym::model
