// Trainer <-> io::Checkpoint (layout in trainer/training_state.h).
#include "trainer/training_state.h"

#include <set>

#include "engine/autograd/grad_mode.h"
#include "engine/generator.h"
#include "io/state_json.h"

namespace zae {

namespace {

namespace st = io::state;
using io::json::Value;
namespace json = io::json;

constexpr const char* kModel = "model.";
constexpr const char* kOptim = "optim.";
constexpr const char* kBest = "best.";
constexpr const char* kGrad = "grad.";

// A detached CPU copy (the checkpoint must not change when training goes on).
Tensor snapshot(const Tensor& t) { return t.detach().to(Device::cpu()).clone(); }

Value optimizer_json(const optim::OptimizerState& s, const std::string& name) {
  Value o = Value::make_object();
  st::put(o, "name", st::string(name));
  Value groups = Value::make_array();
  for (const auto& g : s.groups) {
    Value gj = Value::make_object();
    Value opts = Value::make_object();
    for (const auto& [k, v] : g.options) st::put(opts, k, st::number(v));
    st::put(gj, "options", std::move(opts));
    Value params = Value::make_array();
    for (int64_t i : g.params) params.items.push_back(st::integer(i));
    st::put(gj, "params", std::move(params));
    groups.items.push_back(std::move(gj));
  }
  st::put(o, "groups", std::move(groups));
  return o;
}

Value scheduler_json(const sched::Scheduler& s) {
  Value o = Value::make_object();
  st::put(o, "name", st::string(s.name()));
  Value flat = Value::make_object();
  for (const auto& [k, v] : s.state_dict().flatten()) st::put(flat, k, st::numbers(v));
  st::put(o, "state", std::move(flat));
  return o;
}

Value values_json(const std::map<std::string, std::vector<double>>& m) {
  Value o = Value::make_object();
  for (const auto& [k, v] : m) st::put(o, k, st::numbers(v));
  return o;
}

// "optim.<i>.<key>" -> (i, key); false for other names.
bool split_optim_name(const std::string& name, int64_t& index, std::string& key, const std::string& ctx) {
  if (name.rfind(kOptim, 0) != 0) return false;
  const std::string rest = name.substr(std::char_traits<char>::length(kOptim));
  const size_t dot = rest.find('.');
  ZAE_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < rest.size(), ctx, ": optimizer tensor name '", name,
            "' is not optim.<index>.<key>");
  Value lit;
  lit.kind = json::Kind::number;
  lit.text = rest.substr(0, dot);
  index = st::as_int(lit, ctx + ": optimizer tensor '" + name + "' index");
  key = rest.substr(dot + 1);
  return true;
}

}  // namespace

LoaderPosition loader_position(const DataLoader& loader) { return {loader.state(), loader.size()}; }

io::Checkpoint capture_training_state(const Trainer& trainer, const std::optional<LoaderPosition>& train_loader,
                                      const Value& extras,
                                      const std::map<std::string, std::string>& user_metadata) {
  NoGradGuard no_grad;
  io::Checkpoint ck;
  ck.user_metadata = user_metadata;
  nn::Module& model = trainer.model();
  for (const auto& [name, t] : model.state_dict()) ck.tensors.emplace_back(kModel + name, snapshot(t));
  for (const auto& [name, t] : trainer.best_weights()) ck.tensors.emplace_back(kBest + name, snapshot(t));
  const Trainer::LoopState loop = trainer.loop_state();
  Value grads = Value::make_array();
  if (loop.accumulated > 0) {
    for (const auto& [name, p] : model.named_parameters()) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      ck.tensors.emplace_back(kGrad + name, snapshot(g));
      grads.items.push_back(st::string(name));
    }
  }

  Value& s = ck.state;
  Value progress = Value::make_object();
  st::put(progress, "epoch", st::integer(trainer.progress().get_epoch()));
  st::put(progress, "step", st::integer(trainer.progress().get_step()));
  st::put(s, "progress", std::move(progress));
  st::put(s, "mode", st::string(mode_name(trainer.mode())));
  Value best = Value::make_object();
  st::put(best, "loss", st::number(trainer.best_loss()));
  st::put(best, "epoch", st::integer(trainer.best_epoch()));
  st::put(s, "best", std::move(best));

  Value lj = Value::make_object();
  st::put(lj, "skipped_batches", st::integer(loop.skipped_batches));
  st::put(lj, "optimizer_steps", st::integer(loop.optimizer_steps));
  st::put(lj, "accumulated", st::integer(loop.accumulated));
  st::put(lj, "early_best", st::number(loop.early_best));
  st::put(lj, "early_bad_epochs", st::integer(loop.early_bad_epochs));
  st::put(lj, "loss_history_train", st::numbers(loop.loss_history_train));
  st::put(lj, "loss_history_test", st::numbers(loop.loss_history_test));
  st::put(lj, "in_epoch", st::boolean(loop.in_epoch));
  st::put(lj, "epoch_values", values_json(loop.epoch_values));
  st::put(lj, "pending_grads", std::move(grads));
  st::put(s, "loop", std::move(lj));

  Value rng = Value::make_object();
  Value def = Value::make_object();
  st::put(def, "seed", st::string(std::to_string(default_generator().seed())));
  st::put(def, "offset", st::string(std::to_string(default_generator().offset())));
  st::put(rng, "default", std::move(def));
  st::put(s, "rng", std::move(rng));

  if (train_loader) {
    DataLoaderState ls = train_loader->state;
    if (loop.in_epoch && ls.batches_consumed == 0 && ls.epoch > 0) {
      // Taken after the epoch's last batch: the loader already names the next epoch, but
      // the trainer's epoch is still open; resume must deliver nothing more of it.
      ls.epoch -= 1;
      ls.batches_consumed = train_loader->batches_per_epoch;
    }
    Value lo = Value::make_object();
    st::put(lo, "seed", st::string(std::to_string(ls.seed)));
    st::put(lo, "epoch", st::integer(ls.epoch));
    st::put(lo, "batches_consumed", st::integer(ls.batches_consumed));
    st::put(lo, "batches_per_epoch", st::integer(train_loader->batches_per_epoch));
    st::put(s, "loader", std::move(lo));
  }

  if (const auto& opt = trainer.options().optimizer) {
    const optim::OptimizerState os = opt->state_dict();
    st::put(s, "optimizer", optimizer_json(os, opt->name()));
    for (const auto& [index, buffers] : os.state)
      for (const auto& [key, t] : buffers)
        ck.tensors.emplace_back(kOptim + std::to_string(index) + "." + key, snapshot(t));
  }
  if (const auto& sch = trainer.options().scheduler) st::put(s, "scheduler", scheduler_json(*sch));
  Value all_extras = extras;
  trainer.save_addon_state(all_extras);  // add-ons' own records (e.g. the fp16 loss scaler)
  st::put(s, "extras", std::move(all_extras));
  return ck;
}

namespace {

uint64_t parse_u64_string(const Value& object, const char* key, const std::string& ctx) {
  const std::string text = st::get_string(object, key, ctx);
  Value lit;
  lit.kind = json::Kind::number;
  lit.text = text;
  return st::as_uint(lit, ctx + ": field '" + key + "'");
}

optim::OptimizerState optimizer_state_from(const io::Checkpoint& ck, const Value& oj, const std::string& ctx) {
  optim::OptimizerState os;
  const Value& groups = st::get(oj, "groups", ctx);
  ZAE_CHECK(groups.kind == json::Kind::array, ctx, ": 'groups' is not an array");
  for (size_t gi = 0; gi < groups.items.size(); ++gi) {
    const std::string gctx = ctx + ": group " + std::to_string(gi);
    const Value& g = groups.items[gi];
    optim::OptimizerState::Group group;
    const Value& opts = st::get(g, "options", gctx);
    ZAE_CHECK(opts.kind == json::Kind::object, gctx, ": 'options' is not an object");
    for (const auto& [k, v] : opts.members) group.options[k] = st::as_double(v, gctx + ": option '" + k + "'");
    const Value& params = st::get(g, "params", gctx);
    ZAE_CHECK(params.kind == json::Kind::array, gctx, ": 'params' is not an array");
    for (const Value& p : params.items) group.params.push_back(st::as_int(p, gctx + ": parameter index"));
    os.groups.push_back(std::move(group));
  }
  for (const auto& [name, t] : ck.tensors) {
    int64_t index = 0;
    std::string key;
    if (split_optim_name(name, index, key, ctx)) os.state[index][key] = t;
  }
  return os;
}

}  // namespace

RestoredState restore_training_state(Trainer& trainer, const io::Checkpoint& ck, DataLoader* train_loader) {
  NoGradGuard no_grad;
  const std::string ctx = "restore_training_state";
  const Value& s = ck.state;
  // ---- read and check everything first ----------------------------------------
  RestoredState out;
  const Value& progress = st::get(s, "progress", ctx);
  out.epoch = st::get_int(progress, "epoch", ctx + ": progress");
  out.step = st::get_int(progress, "step", ctx + ": progress");
  const Value& best = st::get(s, "best", ctx);
  const double best_loss = st::get_double(best, "loss", ctx + ": best");
  const int64_t best_epoch = st::get_int(best, "epoch", ctx + ": best");
  const Value& lj = st::get(s, "loop", ctx);
  const std::string lctx = ctx + ": loop";
  Trainer::LoopState loop;
  loop.skipped_batches = st::get_int(lj, "skipped_batches", lctx);
  loop.optimizer_steps = st::get_int(lj, "optimizer_steps", lctx);
  loop.accumulated = st::get_int(lj, "accumulated", lctx);
  loop.early_best = st::get_double(lj, "early_best", lctx);
  loop.early_bad_epochs = st::get_int(lj, "early_bad_epochs", lctx);
  loop.loss_history_train = st::get_doubles(lj, "loss_history_train", lctx);
  loop.loss_history_test = st::get_doubles(lj, "loss_history_test", lctx);
  loop.in_epoch = st::get_bool(lj, "in_epoch", lctx);
  const Value& ev = st::get(lj, "epoch_values", lctx);
  ZAE_CHECK(ev.kind == json::Kind::object, lctx, ": 'epoch_values' is not an object");
  for (const auto& [k, v] : ev.members) loop.epoch_values[k] = st::as_doubles(v, lctx + ": epoch value '" + k + "'");
  out.mid_epoch = loop.in_epoch;

  const Value& rng = st::get(st::get(s, "rng", ctx), "default", ctx + ": rng");
  const uint64_t gen_seed = parse_u64_string(rng, "seed", ctx + ": rng.default");
  const uint64_t gen_offset = parse_u64_string(rng, "offset", ctx + ": rng.default");

  std::optional<DataLoaderState> loader_state;
  if (st::has(s, "loader")) {
    const Value& lo = st::get(s, "loader", ctx);
    DataLoaderState ls;
    ls.seed = parse_u64_string(lo, "seed", ctx + ": loader");
    ls.epoch = st::get_int(lo, "epoch", ctx + ": loader");
    ls.batches_consumed = st::get_int(lo, "batches_consumed", ctx + ": loader");
    const int64_t per_epoch = st::get_int(lo, "batches_per_epoch", ctx + ": loader");
    if (train_loader) {
      ZAE_CHECK(per_epoch == train_loader->size(), ctx, ": the checkpoint's train loader had ", per_epoch,
                " batches per epoch, this one has ", train_loader->size(),
                " (a different dataset, batch size or drop_last cannot resume the same order)");
    }
    loader_state = ls;
  }
  ZAE_CHECK(!out.mid_epoch || loader_state, ctx, ": the checkpoint was taken mid-epoch but holds no loader position");
  ZAE_CHECK(!out.mid_epoch || train_loader != nullptr, ctx,
            ": the checkpoint was taken mid-epoch (step ", out.step, "): pass the train loader to continue that epoch");

  std::shared_ptr<optim::Optimizer> opt = trainer.options().optimizer;
  std::optional<optim::OptimizerState> opt_state;
  if (st::has(s, "optimizer")) {
    ZAE_CHECK(opt != nullptr, ctx, ": the checkpoint holds optimizer state but the trainer has no optimizer");
    const Value& oj = st::get(s, "optimizer", ctx);
    const std::string name = st::get_string(oj, "name", ctx + ": optimizer");
    ZAE_CHECK(name == opt->name(), ctx, ": the checkpoint's optimizer is ", name, ", the trainer's is ", opt->name());
    opt_state = optimizer_state_from(ck, oj, ctx + ": optimizer");
  }
  std::shared_ptr<sched::Scheduler> sch = trainer.options().scheduler;
  std::optional<sched::SchedulerState> sched_state;
  if (st::has(s, "scheduler")) {
    ZAE_CHECK(sch != nullptr, ctx, ": the checkpoint holds scheduler state but the trainer has no scheduler");
    const Value& sj = st::get(s, "scheduler", ctx);
    std::map<std::string, std::vector<double>> flat;
    const Value& fj = st::get(sj, "state", ctx + ": scheduler");
    ZAE_CHECK(fj.kind == json::Kind::object, ctx, ": scheduler 'state' is not an object");
    for (const auto& [k, v] : fj.members) flat[k] = st::as_doubles(v, ctx + ": scheduler state '" + k + "'");
    sched_state = sched::SchedulerState::unflatten(flat);
    sched_state->name = st::get_string(sj, "name", ctx + ": scheduler");
  }

  nn::StateDict model_sd, best_sd;
  std::map<std::string, Tensor> grads;
  for (const auto& [name, t] : ck.tensors) {
    if (name.rfind(kModel, 0) == 0) model_sd.emplace_back(name.substr(6), t);
    else if (name.rfind(kBest, 0) == 0) best_sd.emplace_back(name.substr(5), t);
    else if (name.rfind(kGrad, 0) == 0) grads[name.substr(5)] = t;
  }
  nn::Module& model = trainer.model();
  std::map<std::string, Tensor> params;
  for (const auto& [name, p] : model.named_parameters()) params[name] = p;
  for (const auto& [name, g] : grads) {
    auto it = params.find(name);
    ZAE_CHECK(it != params.end(), ctx, ": a pending gradient for '", name, "', which is not a parameter of the model");
    ZAE_CHECK(it->second.shape() == g.shape(), ctx, ": pending gradient '", name, "' has shape ", shape_str(g.shape()),
              ", the parameter ", shape_str(it->second.shape()));
  }

  // ---- apply (each part validates before it changes anything) ---------------------
  model.load_state_dict(model_sd, /*strict=*/true);
  if (opt_state) opt->load_state_dict(*opt_state);
  if (sched_state) sch->load_state_dict(*sched_state);
  for (auto& [name, p] : params) {
    auto it = grads.find(name);
    p.set_grad(it == grads.end() ? Tensor() : it->second.to(p.device()).to(p.dtype()));
  }
  nn::StateDict best_weights;
  for (auto& [name, t] : best_sd) best_weights.emplace_back(name, t);
  trainer.set_best(best_loss, best_epoch, std::move(best_weights));
  trainer.progress().set_epoch(out.epoch);
  trainer.progress().set_step(out.step);
  trainer.restore_loop_state(std::move(loop));
  default_generator().manual_seed(gen_seed);
  default_generator().set_offset(gen_offset);
  if (out.mid_epoch) train_loader->load_state(*loader_state);
  out.extras = st::has(s, "extras") ? st::get(s, "extras", ctx) : Value::make_object();
  trainer.load_addon_state(out.extras);
  return out;
}

}  // namespace zae
