// Fuzz target: agent config files. Whatever a file holds, LoadConfig
// either returns a validated configuration or an error naming the file;
// it never crashes.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "agent/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    char tmpl[] = "/tmp/zkroll-config-fuzz-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    return std::string(tmpl);
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  zkroll::agent::CommandLine cl;
  cl.config_file = path;
  cl.host = "fuzz-host";
  auto cfg = zkroll::agent::LoadConfig(cl);
  if (cfg.ok()) {
    for (const auto& inst : cfg->instances) {
      if (inst.id.address.port() == 0 || inst.rise < 1 || inst.fall < 1) {
        __builtin_trap();
      }
    }
  } else if (cfg.status().message().find(path) == std::string::npos &&
             cfg.status().message().find("connect string") == std::string::npos &&
             cfg.status().message().find("--zk") == std::string::npos) {
    __builtin_trap();  // every file error names the file
  }
  return 0;
}
