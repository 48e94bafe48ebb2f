// ZeroRedundancyOptimizer: binding (cross-rank check + partition), the sharded step,
// state consolidation over send/recv, and loading a full state. See zero_optimizer.h.
#include "dist/zero_optimizer.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <sstream>
#include <utility>

#include "dist/dist.h"
#include "engine/autograd/grad_mode.h"
#include "engine/error.h"
#include "engine/ops/factory.h"

namespace zae::dist {

namespace {

constexpr int64_t kMaxDims = 8;
constexpr int64_t kRow = 3 + kMaxDims;  // group, dtype, ndim, dims (the last folds any further dims)
constexpr uint32_t kTagBase = 0x5a30;   // consolidation messages: +0 length, +1 text, +2+dtype data

std::unique_ptr<optim::Optimizer> make_prototype(const OptimizerFactory& factory,
                                                 const std::vector<optim::ParamGroup>& groups) {
  ZAE_CHECK(factory != nullptr, "ZeroRedundancyOptimizer: the optimizer factory is empty");
  auto proto = factory(groups);
  ZAE_CHECK(proto != nullptr, "ZeroRedundancyOptimizer: the optimizer factory returned null");
  return proto;
}

std::string describe_row(const std::vector<int64_t>& row) {
  if (row[0] < 0) return "absent";
  std::ostringstream s;
  s << static_cast<DType>(row[1]) << " (";
  for (int64_t d = 0; d < row[2] && d < kMaxDims; ++d) s << (d ? ", " : "") << row[3 + d];
  if (row[2] > kMaxDims) s << ", ...";
  s << ") in param group " << row[0];
  return s.str();
}

}  // namespace

struct ZeroRedundancyOptimizer::Bucket {
  int owner = 0;
  DType dtype = DType::float32;
  std::vector<size_t> params;  // flat indices
  std::vector<int64_t> offsets;
  int64_t numel = 0;
};

ZeroRedundancyOptimizer::ZeroRedundancyOptimizer(std::vector<optim::ParamGroup> groups, OptimizerFactory factory,
                                                 std::shared_ptr<ProcessGroup> group, ZeroOptions options)
    : ZeroRedundancyOptimizer(make_prototype(factory, groups), groups, factory, std::move(group), options) {}

ZeroRedundancyOptimizer::ZeroRedundancyOptimizer(std::vector<Tensor> params, OptimizerFactory factory,
                                                 std::shared_ptr<ProcessGroup> group, ZeroOptions options)
    : ZeroRedundancyOptimizer(std::vector<optim::ParamGroup>{{std::move(params), {}}}, std::move(factory),
                              std::move(group), options) {}

ZeroRedundancyOptimizer::ZeroRedundancyOptimizer(std::unique_ptr<optim::Optimizer> prototype,
                                                 const std::vector<optim::ParamGroup>& groups,
                                                 const OptimizerFactory& factory, std::shared_ptr<ProcessGroup> group,
                                                 ZeroOptions options)
    : Optimizer(prototype->name(), prototype->defaults()),
      prototype_(std::move(prototype)),
      factory_(factory),
      group_(std::move(group)),
      options_(options) {
  ZAE_CHECK(options_.bucket_cap_mb > 0, "ZeroRedundancyOptimizer: bucket_cap_mb must be > 0, got ",
            options_.bucket_cap_mb);
  init_groups(groups);
  if (group_) bind();
}

ZeroRedundancyOptimizer::~ZeroRedundancyOptimizer() = default;

// ---- options ---------------------------------------------------------------------------

void ZeroRedundancyOptimizer::validate(const optim::Options& o) const {
  // The prototype's own checks, on the whole map at once (options may depend on each
  // other): load_state_dict validates every group's map before it changes anything.
  optim::OptimizerState probe;
  int64_t index = 0;
  for (size_t g = 0; g < prototype_->num_groups(); ++g) {
    optim::OptimizerState::Group sg;
    sg.options = g == 0 ? o : prototype_->group(g).options;
    for (size_t i = 0; i < prototype_->group(g).params.size(); ++i) sg.params.push_back(index++);
    probe.groups.push_back(std::move(sg));
  }
  prototype_->load_state_dict(probe);
}

void ZeroRedundancyOptimizer::sync_options() {
  if (!inner_) return;
  bool failed = false;
  for (size_t g = 0; g < num_groups() && !failed; ++g) {
    const optim::Options& want = group(g).options;
    for (const auto& [key, value] : want) {
      if (inner_->option(key, g) == value) continue;
      try {
        inner_->set_option(key, value, g);
      } catch (const Error&) {  // an intermediate combination is invalid: set all at once below
        failed = true;
        break;
      }
    }
  }
  if (!failed) return;
  optim::OptimizerState st = inner_->state_dict();
  for (size_t g = 0; g < num_groups(); ++g) st.groups[g].options = group(g).options;
  inner_->load_state_dict(st);
}

// ---- binding ---------------------------------------------------------------------------

void ZeroRedundancyOptimizer::require_bound(const char* what) const {
  ZAE_CHECK(bound_, "ZeroRedundancyOptimizer::", what,
            ": not bound to a process group yet (it binds in the constructor when given a group, else at the "
            "first step, consolidate_state_dict or load_state_dict; or call bind())");
}

Device ZeroRedundancyOptimizer::comm_device() const {
  return group_->backend() == "nccl" ? parameters().at(0).device() : Device::cpu();
}

void ZeroRedundancyOptimizer::bind() {
  if (bound_) return;
  if (!group_) {
    ZAE_CHECK(is_initialized(), "ZeroRedundancyOptimizer: no process group: pass one to the constructor or call "
                                "dist::init_process_group first (MultiGPUAddon does it when run() starts)");
    group_ = default_group_ptr();
  }
  check_same_parameters();
  build_partition();
  bound_ = true;
}

void ZeroRedundancyOptimizer::check_same_parameters() {
  NoGradGuard no_grad;
  const Device dev = comm_device();
  std::vector<int64_t> rows;
  for (size_t g = 0; g < num_groups(); ++g)
    for (const Tensor& p : group(g).params) {
      std::vector<int64_t> row(kRow, 1);
      row[0] = static_cast<int64_t>(g);
      row[1] = static_cast<int64_t>(p.dtype());
      row[2] = static_cast<int64_t>(p.shape().size());
      for (size_t d = 0; d < p.shape().size(); ++d) {
        const size_t slot = std::min<size_t>(d, kMaxDims - 1);
        row[3 + slot] = d < kMaxDims ? p.shape()[d] : row[3 + slot] * p.shape()[d];
      }
      rows.insert(rows.end(), row.begin(), row.end());
    }
  const int64_t count = static_cast<int64_t>(rows.size() / kRow);
  const int world = group_->size();
  Tensor counts = group_->all_gather(tensor(std::vector<int64_t>{count}, {1}, {.dtype = DType::int64}).to(dev));
  const std::vector<int64_t> all_counts = counts.to(Device::cpu()).to_vector<int64_t>();
  const int64_t max_count = *std::max_element(all_counts.begin(), all_counts.end());
  rows.resize(static_cast<size_t>(max_count * kRow), -1);
  Tensor mine = tensor(rows, {max_count, kRow}, {.dtype = DType::int64}).to(dev);
  const std::vector<int64_t> all =
      max_count > 0 ? group_->all_gather(mine).to(Device::cpu()).to_vector<int64_t>() : std::vector<int64_t>{};
  auto row_of = [&](int r, int64_t i) {
    const auto begin = all.begin() + (static_cast<int64_t>(r) * max_count + i) * kRow;
    return std::vector<int64_t>(begin, begin + kRow);
  };
  for (int64_t i = 0; i < max_count; ++i)
    for (int r = 1; r < world; ++r) {
      const auto a = row_of(0, i), b = row_of(r, i);
      if (a == b) continue;
      ZAE_FAIL("ZeroRedundancyOptimizer: the ranks passed different parameter lists (every rank must pass the same "
               "parameters in the same order): parameter ",
               i, " is ", describe_row(a), " on rank 0 but ", describe_row(b), " on rank ", r, " (rank 0 has ",
               all_counts[0], " parameters, rank ", r, " has ", all_counts[static_cast<size_t>(r)], ")");
    }
}

void ZeroRedundancyOptimizer::build_partition() {
  const std::vector<Tensor> params = parameters();
  const int world = group_->size();
  const int me = group_->rank();
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  owners_.assign(params.size(), 0);
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owners_[i] = r;
    load[static_cast<size_t>(r)] += params[i].numel();
  }
  // The inner optimizer: this rank's parameters, group by group, with the groups' options.
  local_.clear();
  std::vector<optim::ParamGroup> mine(num_groups());
  size_t flat = 0;
  for (size_t g = 0; g < num_groups(); ++g) {
    mine[g].options = group(g).options;
    for (const Tensor& p : group(g).params) {
      if (owners_[flat] == me) {
        mine[g].params.push_back(p);
        local_.push_back(flat);
      }
      ++flat;
    }
  }
  inner_.reset();
  if (!local_.empty()) {
    inner_ = factory_(mine);
    ZAE_CHECK(inner_ != nullptr, "ZeroRedundancyOptimizer: the optimizer factory returned null");
    ZAE_CHECK(inner_->num_groups() == num_groups() && inner_->parameters().size() == local_.size(),
              "ZeroRedundancyOptimizer: the factory's optimizer has ", inner_->num_groups(), " groups and ",
              inner_->parameters().size(), " parameters, it was given ", num_groups(), " groups and ", local_.size(),
              " parameters (the factory must use the groups it is given)");
  }
  // Broadcast buckets: per owner, per dtype, in flat order, cut at bucket_cap_mb.
  buckets_.clear();
  const auto cap = static_cast<int64_t>(options_.bucket_cap_mb * 1024 * 1024);
  for (int r = 0; r < world; ++r) {
    std::vector<DType> dtypes;
    for (size_t i = 0; i < params.size(); ++i)
      if (owners_[i] == r && std::find(dtypes.begin(), dtypes.end(), params[i].dtype()) == dtypes.end())
        dtypes.push_back(params[i].dtype());
    std::sort(dtypes.begin(), dtypes.end());
    for (DType d : dtypes) {
      Bucket b;
      for (size_t i = 0; i < params.size(); ++i) {
        if (owners_[i] != r || params[i].dtype() != d) continue;
        const int64_t n = params[i].numel();
        if (!b.params.empty() && (b.numel + n) * static_cast<int64_t>(itemsize(d)) > cap) {
          buckets_.push_back(std::move(b));
          b = Bucket{};
        }
        b.owner = r;
        b.dtype = d;
        b.params.push_back(i);
        b.offsets.push_back(b.numel);
        b.numel += n;
      }
      if (!b.params.empty()) buckets_.push_back(std::move(b));
    }
  }
}

const std::vector<int>& ZeroRedundancyOptimizer::owners() const {
  require_bound("owners");
  return owners_;
}

const std::vector<size_t>& ZeroRedundancyOptimizer::local_indices() const {
  require_bound("local_indices");
  return local_;
}

const optim::Optimizer* ZeroRedundancyOptimizer::local_optimizer() const {
  require_bound("local_optimizer");
  return inner_.get();
}

const std::map<std::string, Tensor>& ZeroRedundancyOptimizer::local_state(const Tensor& param) const {
  static const std::map<std::string, Tensor> empty;
  if (!inner_) return empty;
  return inner_->state(param);
}

// ---- step --------------------------------------------------------------------------------

void ZeroRedundancyOptimizer::step() {
  bind();
  consolidated_.reset();
  consolidated_to_ = -1;
  if (inner_) {
    sync_options();
    inner_->step();
  }
  broadcast_parameters();
}

void ZeroRedundancyOptimizer::broadcast_parameters() {
  if (group_->size() == 1) return;
  NoGradGuard no_grad;
  const std::vector<Tensor> params = parameters();
  const Device dev = comm_device();
  const int me = group_->rank();
  for (const Bucket& b : buckets_) {
    const bool owner = b.owner == me;
    if (b.params.size() == 1) {  // a lone parameter travels in place when it can
      const Tensor& p = params[b.params[0]];
      if (p.is_contiguous() && p.device() == dev) {
        Tensor t = p.detach();
        group_->broadcast(t, b.owner);
        if (!owner) p.storage()->bump_version();
        continue;
      }
    }
    Tensor flat = empty({b.numel}, {.dtype = b.dtype, .device = dev});
    if (owner)
      for (size_t k = 0; k < b.params.size(); ++k) {
        const Tensor& p = params[b.params[k]];
        flat.narrow(0, b.offsets[k], p.numel()).copy_(p.detach().reshape({p.numel()}));
      }
    group_->broadcast(flat, b.owner);
    if (!owner)
      for (size_t k = 0; k < b.params.size(); ++k) {
        const Tensor& p = params[b.params[k]];
        p.detach().copy_(flat.narrow(0, b.offsets[k], p.numel()).view(p.shape()));
      }
  }
}

// ---- state dicts ---------------------------------------------------------------------------

void ZeroRedundancyOptimizer::consolidate_state_dict(int to) {
  bind();
  const int world = group_->size();
  const int me = group_->rank();
  ZAE_CHECK(to >= 0 && to < world, "ZeroRedundancyOptimizer::consolidate_state_dict: rank ", to,
            " is not in the group (size ", world, ")");
  consolidated_.reset();
  consolidated_to_ = -1;
  NoGradGuard no_grad;
  optim::OptimizerState out;
  const std::vector<Tensor> params = parameters();
  if (me == to) {
    int64_t index = 0;
    for (size_t g = 0; g < num_groups(); ++g) {
      optim::OptimizerState::Group sg;
      sg.options = group(g).options;
      for (size_t i = 0; i < group(g).params.size(); ++i) sg.params.push_back(index++);
      out.groups.push_back(std::move(sg));
    }
    for (size_t flat : local_) {
      const auto& st = inner_->state(params[flat]);
      if (st.empty()) continue;
      auto& dst = out.state[static_cast<int64_t>(flat)];
      for (const auto& [key, t] : st) dst[key] = t.clone();
    }
  }
  for (int r = 0; r < world; ++r) {
    if (r == to) continue;
    if (me == r) send_shard_state(to);
    if (me == to) receive_shard_state(r, out);
  }
  if (me == to) consolidated_ = std::move(out);
  consolidated_to_ = to;
}

void ZeroRedundancyOptimizer::send_shard_state(int to) {
  const Device dev = comm_device();
  const std::vector<Tensor> params = parameters();
  // Text: one line per buffer, "index key dtype ndim dims..."; then one flat buffer per dtype.
  std::ostringstream text;
  std::map<DType, std::vector<Tensor>> data;
  for (size_t flat : local_) {
    for (const auto& [key, t] : inner_->state(params[flat])) {
      text << flat << ' ' << key << ' ' << static_cast<int>(t.dtype()) << ' ' << t.shape().size();
      for (int64_t d : t.shape()) text << ' ' << d;
      text << '\n';
      data[t.dtype()].push_back(t.detach().reshape({t.numel()}).to(dev));
    }
  }
  const std::string s = text.str();
  Tensor len = tensor(std::vector<int64_t>{static_cast<int64_t>(s.size())}, {1}, {.dtype = DType::int64}).to(dev);
  group_->send(len, to, kTagBase);
  if (s.empty()) return;
  std::vector<uint8_t> bytes(s.begin(), s.end());
  group_->send(tensor(bytes, {static_cast<int64_t>(bytes.size())}, {.dtype = DType::uint8}).to(dev), to,
               kTagBase + 1);
  for (auto& [dtype, parts] : data) {
    int64_t n = 0;
    for (const Tensor& t : parts) n += t.numel();
    Tensor flat = empty({n}, {.dtype = dtype, .device = dev});
    int64_t off = 0;
    for (const Tensor& t : parts) {
      flat.narrow(0, off, t.numel()).copy_(t);
      off += t.numel();
    }
    group_->send(flat, to, kTagBase + 2 + static_cast<uint32_t>(dtype));
  }
}

void ZeroRedundancyOptimizer::receive_shard_state(int from, optim::OptimizerState& out) {
  const Device dev = comm_device();
  Tensor len = empty({1}, {.dtype = DType::int64, .device = dev});
  group_->recv(len, from, kTagBase);
  const int64_t n = len.to(Device::cpu()).to_vector<int64_t>()[0];
  if (n == 0) return;
  Tensor bytes = empty({n}, {.dtype = DType::uint8, .device = dev});
  group_->recv(bytes, from, kTagBase + 1);
  const std::vector<uint8_t> b = bytes.to(Device::cpu()).to_vector<uint8_t>();
  std::istringstream text(std::string(b.begin(), b.end()));
  struct Entry {
    int64_t index;
    std::string key;
    DType dtype;
    Shape shape;
  };
  std::vector<Entry> entries;
  std::map<DType, int64_t> totals;
  std::string line;
  while (std::getline(text, line)) {
    std::istringstream ls(line);
    Entry e;
    int dtype = 0;
    size_t ndim = 0;
    ls >> e.index >> e.key >> dtype >> ndim;
    e.dtype = static_cast<DType>(dtype);
    e.shape.resize(ndim);
    for (auto& d : e.shape) ls >> d;
    ZAE_CHECK(!ls.fail(), "ZeroRedundancyOptimizer: rank ", from, " sent a malformed state entry '", line, "'");
    totals[e.dtype] += shape_numel(e.shape);
    entries.push_back(std::move(e));
  }
  std::map<DType, Tensor> flats;
  for (const auto& [dtype, total] : totals) {  // the sender's order: std::map over DType
    Tensor flat = empty({total}, {.dtype = dtype, .device = dev});
    group_->recv(flat, from, kTagBase + 2 + static_cast<uint32_t>(dtype));
    flats[dtype] = flat;
  }
  std::map<DType, int64_t> offsets;
  for (const Entry& e : entries) {
    const int64_t numel = shape_numel(e.shape);
    Tensor t = flats[e.dtype].narrow(0, offsets[e.dtype], numel).view(e.shape);
    offsets[e.dtype] += numel;
    // "step" lives on the CPU in a plain optimizer's state.
    out.state[e.index][e.key] = e.key == "step" ? t.to(Device::cpu()).clone() : t;
  }
}

optim::OptimizerState ZeroRedundancyOptimizer::state_dict() const {
  const int me = bound_ ? group_->rank() : -1;
  ZAE_CHECK(consolidated_to_ >= 0, "ZeroRedundancyOptimizer::state_dict(): the state is sharded across ranks; call "
                                   "consolidate_state_dict(to) on every rank first (again after each step or "
                                   "load_state_dict)");
  ZAE_CHECK(consolidated_.has_value(), "ZeroRedundancyOptimizer::state_dict(): the state was consolidated on rank ",
            consolidated_to_, ", this is rank ", me, " (only rank ", consolidated_to_, " holds the full state)");
  return *consolidated_;
}

void ZeroRedundancyOptimizer::load_state_dict(const optim::OptimizerState& saved) {
  bind();
  const std::string& n = name();
  ZAE_CHECK(saved.groups.size() == num_groups(), n, ": load_state_dict got ", saved.groups.size(),
            " param groups, the optimizer has ", num_groups());
  const std::vector<Tensor> params = parameters();
  std::map<int64_t, size_t> flat_of;  // saved index -> flat index
  size_t flat = 0;
  for (size_t g = 0; g < num_groups(); ++g) {
    const auto& sg = saved.groups[g];
    ZAE_CHECK(sg.params.size() == group(g).params.size(), n, ": load_state_dict: param group ", g, " has ",
              sg.params.size(), " parameters in the state dict, ", group(g).params.size(), " in the optimizer");
    for (int64_t idx : sg.params)
      ZAE_CHECK(flat_of.emplace(idx, flat++).second, n, ": load_state_dict: parameter index ", idx,
                " appears more than once");
  }
  for (const auto& [idx, buffers] : saved.state) {
    auto it = flat_of.find(idx);
    ZAE_CHECK(it != flat_of.end(), n, ": load_state_dict: state for parameter index ", idx,
              ", which no param group lists");
    const Tensor& p = params[it->second];
    for (const auto& [key, t] : buffers)
      ZAE_CHECK(key == "step" || !t.defined() || t.shape() == p.shape(), n, ": load_state_dict: state '", key,
                "' of parameter ", idx, " has shape ", shape_str(t.shape()), ", the parameter has shape ",
                shape_str(p.shape()));
  }
  // This rank's share, numbered as the inner optimizer numbers its parameters.
  std::map<size_t, int64_t> inner_index;
  for (size_t k = 0; k < local_.size(); ++k) inner_index[local_[k]] = static_cast<int64_t>(k);
  optim::OptimizerState sub;
  for (size_t g = 0; g < num_groups(); ++g) {
    optim::OptimizerState::Group sg;
    sg.options = saved.groups[g].options;
    for (int64_t idx : saved.groups[g].params) {
      auto it = inner_index.find(flat_of[idx]);
      if (it == inner_index.end()) continue;
      sg.params.push_back(it->second);
      auto st = saved.state.find(idx);
      if (st != saved.state.end()) sub.state[it->second] = st->second;
    }
    sub.groups.push_back(std::move(sg));
  }
  if (inner_) inner_->load_state_dict(sub);  // validates options and buffers; changes nothing on error
  optim::OptimizerState options_only;
  options_only.groups = saved.groups;
  Optimizer::load_state_dict(options_only);  // the groups' options (the base keeps no state)
  consolidated_.reset();
  consolidated_to_ = -1;
}

}  // namespace zae::dist
