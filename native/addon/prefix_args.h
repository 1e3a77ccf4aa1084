// Reads the shared-prefix option of policyForward (see native/model/prefix.h):
//   prefixGroup:  Int32Array [sequences], the group of each sequence or -1 (none);
//   prefixLength: Int32Array [groups], the tokens the group's sequences share.
// Both or neither. The contents (identical tokens, images, mask) are checked by Model::validate_groups.
#pragma once
#include <vector>

#include "addon/args.h"
#include "model/model.h"

namespace medgym::addon {

std::vector<model::PrefixGroup> read_prefix_groups(Args& a, size_t n_seqs);

}  // namespace medgym::addon
