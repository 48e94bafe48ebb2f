// zae-ckpt's verify and convert commands and its command line (inspect is in
// ckpt_inspect.cpp). Exit statuses: 0 success, 1 a file failed or could not be
// read/written, 2 a usage error.
#include "apps/ckpt/ckpt_commands.h"

#include <cstdio>
#include <filesystem>
#include <system_error>

#include "engine/error.h"
#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io/state_json.h"

namespace zae::apps::ckpt {

namespace fs = std::filesystem;
namespace st = io::state;

namespace {

std::string hex8(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// Whether `a` and `b` name the same file (also through links, or when `b` does not exist yet).
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(b, ec) && fs::equivalent(a, b, ec)) return true;
  const fs::path ca = fs::weakly_canonical(a, ec);
  if (ec) return false;
  const fs::path cb = fs::weakly_canonical(b, ec);
  return !ec && ca == cb;
}

const char* kUsage =
    "usage: zae-ckpt <command> [options]\n"
    "commands:\n"
    "  inspect FILE [--json]     tensors (name, dtype, shape, bytes) with totals and the metadata of a .ckpt\n"
    "                            or a plain .safetensors file; for a .ckpt (verified first) also its version,\n"
    "                            checksum, user metadata and a summary of the training state.\n"
    "                            --json: print only the .ckpt's training state JSON, pretty-printed\n"
    "  verify FILE               run every check of the readers (layout, format, version, checksum, tensor\n"
    "                            bytes); prints \"OK: ...\" and exits 0, or the error and exits 1\n"
    "  convert IN.ckpt OUT.safetensors [--best]\n"
    "                            write the checkpoint's model weights (\"model.\" prefix stripped; --best: the\n"
    "                            best epoch's weights) as safetensors, with metadata epoch, step, source\n"
    "  --help                    this text\n"
    "exit status: 0 success, 1 a file failed a check or could not be read or written, 2 usage error\n";

const char* kShortUsage =
    "usage: zae-ckpt inspect FILE [--json] | verify FILE | convert IN.ckpt OUT.safetensors [--best]\n"
    "       (zae-ckpt --help for details)\n";

struct Parsed {
  std::vector<std::string> positional;
  std::vector<std::string> flags;
};

Parsed split_args(const std::vector<std::string>& args) {
  Parsed p;
  bool options_done = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!options_done && a == "--") options_done = true;
    else if (!options_done && a.size() > 1 && a[0] == '-') p.flags.push_back(a);
    else p.positional.push_back(a);
  }
  return p;
}

}  // namespace

std::string verify(const std::string& path) {
  const io::SafetensorsHeader header = io::read_safetensors_header(path);
  if (io::is_checkpoint(header)) {
    const io::CheckpointInfo info = io::verify_checkpoint(path);
    std::string where;
    if (const io::json::Value* p = info.state.find("progress"); p && p->find("epoch") && p->find("step"))
      where = ", epoch " + std::to_string(st::get_int(*p, "epoch", "progress")) + ", step " +
              std::to_string(st::get_int(*p, "step", "progress"));
    return "OK: " + path + ": " + std::to_string(info.header.entries.size()) + " tensors, crc32 " +
           hex8(info.checksum) + " (matches the stored checksum), zae checkpoint version " +
           std::to_string(info.version) + where;
  }
  io::SafetensorsLoadOptions load;
  load.widen_unsupported = true;
  const io::SafetensorsData data = io::load_safetensors(path, load);
  io::MappedFile file(path, "verify");
  const uint32_t crc = file.size() ? io::crc32_update(0, file.data(), file.size()) : 0;
  return "OK: " + path + ": " + std::to_string(data.tensors.size()) + " tensors, crc32 " + hex8(crc) +
         " (computed; a plain safetensors file stores no checksum)";
}

std::string convert(const std::string& in, const std::string& out, const ConvertOptions& options) {
  ZAE_CHECK(!out.empty(), "the output path is empty");
  ZAE_CHECK(!same_file(in, out), "the output '", out, "' is the input file '", in, "'; choose another path");
  const io::SafetensorsHeader header = io::read_safetensors_header(in);
  ZAE_CHECK(io::is_checkpoint(header), in, ": not a zae checkpoint (.ckpt): it is a plain safetensors file "
            "(metadata \"format\" is not \"zae-ckpt\"); convert reads checkpoints only");
  const io::Checkpoint ck = io::load_checkpoint(in);
  const std::string prefix = options.best ? "best." : "model.";
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : ck.tensors)
    if (name.rfind(prefix, 0) == 0) tensors.emplace_back(name.substr(prefix.size()), t);

  const std::string ctx = in + ": training state";
  const io::json::Value& progress = st::get(ck.state, "progress", ctx);
  const int64_t next_epoch = st::get_int(progress, "epoch", ctx + ": progress");
  const int64_t step = st::get_int(progress, "step", ctx + ": progress");
  int64_t epoch = 0;
  if (options.best) {
    const io::json::Value& best = st::get(ck.state, "best", ctx);
    epoch = st::get_int(best, "epoch", ctx + ": best");
    ZAE_CHECK(epoch > 0 && !tensors.empty(), in, ": has no best weights (no epoch has finished yet); "
              "convert without --best takes the current model weights");
  } else {
    ZAE_CHECK(!tensors.empty(), in, ": has no \"model.\" tensors to convert");
    const io::json::Value* loop = ck.state.find("loop");
    const bool mid = loop && loop->find("in_epoch") && st::get_bool(*loop, "in_epoch", ctx + ": loop");
    epoch = mid ? next_epoch : next_epoch - 1;  // the epoch these weights come from
  }

  std::map<std::string, std::string> md = ck.user_metadata;
  md["epoch"] = std::to_string(epoch);
  md["step"] = std::to_string(step);
  md["source"] = fs::path(in).filename().string();
  md["weights"] = options.best ? "best" : "model";
  io::save_safetensors(out, tensors, md);
  return "wrote " + out + ": " + std::to_string(tensors.size()) + " tensors (" +
         (options.best ? "best" : "model") + " weights of epoch " + std::to_string(epoch) + ", step " +
         std::to_string(step) + ")";
}

int run_ckpt_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kUsage;
    return kExitUsage;
  }
  const std::string& cmd = args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    out << kUsage;
    return kExitOk;
  }
  const Parsed p = split_args(args);
  for (const auto& f : p.flags)
    if (f == "--help" || f == "-h") {
      out << kUsage;
      return kExitOk;
    }
  auto usage_error = [&](const std::string& what) {
    err << "zae-ckpt: " << what << "\n" << kShortUsage;
    return kExitUsage;
  };
  auto allow_flags = [&](std::initializer_list<const char*> allowed) -> std::string {
    for (const auto& f : p.flags) {
      bool ok = false;
      for (const char* a : allowed) ok = ok || f == a;
      if (!ok) return f;
    }
    return "";
  };
  auto has_flag = [&](const char* name) {
    for (const auto& f : p.flags)
      if (f == name) return true;
    return false;
  };
  const size_t want = cmd == "convert" ? 2 : 1;
  if (cmd != "inspect" && cmd != "verify" && cmd != "convert") return usage_error("unknown command '" + cmd + "'");
  const std::string bad = cmd == "inspect" ? allow_flags({"--json"})
                          : cmd == "convert" ? allow_flags({"--best"})
                                             : allow_flags({});
  if (!bad.empty()) return usage_error("unknown option '" + bad + "' for " + cmd);
  if (p.positional.size() != want)
    return usage_error(cmd + " takes " + (want == 1 ? "one file" : "an input and an output file") + ", got " +
                       std::to_string(p.positional.size()) + " argument(s)");
  try {
    if (cmd == "inspect") inspect(p.positional[0], has_flag("--json"), out);
    else if (cmd == "verify") out << verify(p.positional[0]) << "\n";
    else {
      ConvertOptions co;
      co.best = has_flag("--best");
      out << convert(p.positional[0], p.positional[1], co) << "\n";
    }
    out.flush();
    return kExitOk;
  } catch (const Error& e) {
    err << "zae-ckpt " << cmd << ": " << e.message() << "\n";
  } catch (const std::exception& e) {
    err << "zae-ckpt " << cmd << ": " << e.what() << "\n";
  }
  return kExitFailed;
}

}  // namespace zae::apps::ckpt
