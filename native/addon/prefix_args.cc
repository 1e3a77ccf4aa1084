#include "addon/prefix_args.h"

#include <string>

namespace medgym::addon {

std::vector<model::PrefixGroup> read_prefix_groups(Args& a, size_t n_seqs) {
  const bool has_group = a.has("prefixGroup"), has_length = a.has("prefixLength");
  if (!has_group && !has_length) return {};
  if (!has_group) a.type_error("Expected `prefixGroup` (Int32Array, one group index or -1 per sequence) with `prefixLength`");
  if (!has_length) a.type_error("Expected `prefixLength` (Int32Array, tokens shared per group) with `prefixGroup`");
  auto group = a.i32("prefixGroup", static_cast<int64_t>(n_seqs));  // typed-array checks name the field
  auto length = a.i32("prefixLength", -1);
  // Every group needs a sequence (Model::validate_groups): refused here, before one PrefixGroup per
  // entry is allocated (an Int32Array of 2^24 entries would otherwise cost 0.5 GiB).
  if (length.length > n_seqs)
    a.range_error("Expected at most one group per sequence (" + std::to_string(n_seqs) + ") in `prefixLength` but received " +
                  std::to_string(length.length));
  std::vector<model::PrefixGroup> groups(length.length);
  for (size_t k = 0; k < length.length; ++k) {
    if (length.data[k] < 0)
      a.range_error("Expected lengths >= 0 in `prefixLength` but element " + std::to_string(k) + " is " +
                    std::to_string(length.data[k]));
    groups[k].length = length.data[k];
  }
  for (size_t s = 0; s < n_seqs; ++s) {
    const int32_t g = group.data[s];
    if (g < -1 || g >= static_cast<int64_t>(groups.size()))
      a.range_error("Expected group indices in [-1, " + std::to_string(groups.size()) + ") for `prefixGroup` but element " +
                    std::to_string(s) + " is " + std::to_string(g));
    if (g >= 0) groups[g].seqs.push_back(static_cast<int64_t>(s));
  }
  return groups;
}

}  // namespace medgym::addon
