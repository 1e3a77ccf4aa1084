// Validation shared by the bindings that take token ids and a temperature (log-prob, cross-entropy).
#pragma once
#include <string>

#include "addon/args.h"

namespace medgym::addon {

constexpr int64_t kMaxVocab = int64_t(1) << 30;
// logits / tau must stay finite in float: temperatures outside this range are refused.
constexpr double kMinTemperature = 1e-6, kMaxTemperature = 1e6;

// Target ids must be < V; any negative id (-1, or -100 as in PyTorch) ignores its row.
inline void check_targets(Args& a, const char* name, View<int32_t> targets, int64_t V) {
  for (size_t i = 0; i < targets.length; ++i)
    if (targets.data[i] >= V)
      a.range_error(std::string("Expected ids below `vocab` (") + std::to_string(V) +
                    "), or negative to ignore a row, in `" + name + "` but element " + std::to_string(i) + " is " +
                    std::to_string(targets.data[i]));
}

}  // namespace medgym::addon
