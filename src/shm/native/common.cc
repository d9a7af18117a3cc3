// Errors and arguments shared by every call: JS errors with an errno code, the platform check, segment name validation.

#include "common.h"

namespace ud {

namespace {

// Errors: a JS Error with .code (errno name or our own code) and .errno, mapped to typed errors in JS.

const char* ErrnoName(int err) {
  switch (err) {
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EFBIG: return "EFBIG";
    case EINTR: return "EINTR";
    case ELOOP: return "ELOOP";
    case ENOTDIR: return "ENOTDIR";
    case EBUSY: return "EBUSY";
    default: return "EUNKNOWN";
  }
}

// Validates a segment name before it reaches the OS: "/" followed by 1..250 characters of
// [A-Za-z0-9._-]. The TypeScript layer validates too; this is the last line of defence.
bool ValidName(const std::string& name) {
  if (name.size() < 2 || name.size() > 251 || name[0] != '/') return false;
  for (size_t i = 1; i < name.size(); i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  if (name == "/." || name == "/..") return false;
  return true;
}

}  // namespace

void ThrowCode(Napi::Env env, const std::string& code, const std::string& message, int err) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  if (err != 0) e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

void ThrowErrno(Napi::Env env, const std::string& what, int err) {
  ThrowCode(env, ErrnoName(err), what + ": " + std::strerror(err), err);
}

bool CheckSupported(Napi::Env env) {
#if UD_SUPPORTED
  return true;
#else
  ThrowCode(env, "UNSUPPORTED_PLATFORM", "ultradict's native layer supports Linux only");
  return false;
#endif
}

bool GetName(const Napi::CallbackInfo& info, size_t index, std::string* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsString()) {
    ThrowCode(env, "EINVAL", "segment name must be a string");
    return false;
  }
  *out = info[index].As<Napi::String>().Utf8Value();
  if (!ValidName(*out)) {
    ThrowCode(env, "EINVAL", "invalid segment name: " + *out);
    return false;
  }
  return true;
}

}  // namespace ud
