#include "coordinator/options.h"

#include "common/payload.h"
#include "common/utf8.h"
#include "coordinator/command.h"

namespace zkroll::coordinator {

void Require(const OptionValues& vm, const char* name) {
  if (!vm.count(name)) {
    throw OptionError{std::string("--") + name + " is required"};
  }
}

std::string Get(const OptionValues& vm, const char* name) {
  return vm[name].as<std::string>();
}

std::string OptionalString(const OptionValues& vm, const char* name) {
  return vm.count(name) ? Get(vm, name) : std::string();
}

bool SwitchOption(const OptionValues& vm, const char* name) {
  return vm.count(name) && vm[name].as<bool>();
}

Millis DurationOption(const OptionValues& vm, const char* name,
                      bool allow_zero) {
  auto d = ParseDuration(Get(vm, name));
  if (!d.ok()) {
    throw OptionError{std::string("--") + name + ": " + d.status().message()};
  }
  if (!allow_zero && d->count() == 0) {
    throw OptionError{std::string("--") + name + " must be more than 0"};
  }
  return *d;
}

int IntOption(const OptionValues& vm, const char* name, int min, int max) {
  int v = vm[name].as<int>();
  if (v < min || v > max) {
    throw OptionError{std::string("--") + name + " must be between " +
                      std::to_string(min) + " and " + std::to_string(max) +
                      ", not " + std::to_string(v)};
  }
  return v;
}

ServiceName ServiceOption(const OptionValues& vm) {
  Require(vm, "service");
  auto s = ServiceName::Parse(Get(vm, "service"));
  if (!s.ok()) throw OptionError{"--service: " + s.status().message()};
  return *s;
}

InstanceAddress InstanceOption(const OptionValues& vm) {
  Require(vm, "instance");
  auto a = InstanceAddress::Parse(Get(vm, "instance"));
  if (!a.ok()) {
    throw OptionError{"--instance: " + a.status().message()};
  }
  return *a;
}

DeployId DeployIdOption(const OptionValues& vm) {
  if (!vm.count("deploy-id")) return DeployId::Generate();
  return RequiredDeployId(vm, "deploy-id");
}

DeployId RequiredDeployId(const OptionValues& vm, const char* name) {
  Require(vm, name);
  auto id = DeployId::Parse(Get(vm, name));
  if (!id.ok()) {
    throw OptionError{std::string("--") + name + ": " + id.status().message()};
  }
  return *id;
}

std::string ReasonText(const std::string& text, const char* option) {
  if (text.empty()) throw OptionError{std::string(option) + " is empty"};
  if (text.size() > 512) {
    throw OptionError{std::string(option) + " is longer than 512 bytes"};
  }
  if (!IsValidUtf8(text)) {
    throw OptionError{std::string(option) + " is not valid UTF-8"};
  }
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      throw OptionError{std::string(option) + " contains a control character"};
    }
  }
  return text;
}

std::vector<std::string> CommandOption(const OptionValues& vm,
                                       const char* name) {
  const std::string flag = std::string("--") + name;
  auto argv = SplitCommandLine(Get(vm, name));
  if (!argv.ok()) throw OptionError{flag + ": " + argv.status().message()};
  Status ok = CheckExecutable((*argv)[0]);
  if (!ok.ok()) throw OptionError{flag + ": " + ok.message()};
  return *argv;
}

std::optional<std::string> OptionText(const boost::any& value) {
  if (value.type() == typeid(std::string)) {
    return boost::any_cast<std::string>(value);
  }
  if (value.type() == typeid(int)) {
    return std::to_string(boost::any_cast<int>(value));
  }
  if (value.type() == typeid(bool)) {
    return boost::any_cast<bool>(value) ? "true" : "false";
  }
  return std::nullopt;
}

}  // namespace zkroll::coordinator
