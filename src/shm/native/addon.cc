// The addon's module: Init registers every call (segments, futex, liveness, watchers) on the exports.
//
// ultradict native layer: POSIX shared memory segments mapped as SharedArrayBuffers, futex wait/wake,
// and process/thread liveness. Everything else (formats, locking protocol, caching) lives in TypeScript.
//
// All platform code is in this folder (common.h is included by every file). Linux is the supported
// platform; elsewhere the module loads but every call reports UNSUPPORTED_PLATFORM so the TypeScript
// loader can throw a clear error.

#include "common.h"

namespace {

using namespace ud;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("supported", Napi::Boolean::New(env, UD_SUPPORTED != 0));
  exports.Set("create", Napi::Function::New(env, Create, "create"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("reserve", Napi::Function::New(env, Reserve, "reserve"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("liveMappings", Napi::Function::New(env, LiveMappings, "liveMappings"));
  exports.Set("unlink", Napi::Function::New(env, Unlink, "unlink"));
  exports.Set("futexWait", Napi::Function::New(env, FutexWait, "futexWait"));
  exports.Set("futexWake", Napi::Function::New(env, FutexWake, "futexWake"));
  exports.Set("threadStartTime", Napi::Function::New(env, ThreadStartTime, "threadStartTime"));
  exports.Set("processAlive", Napi::Function::New(env, ProcessAlive, "processAlive"));
  exports.Set("self", Napi::Function::New(env, Self, "self"));
  exports.Set("watchStart", Napi::Function::New(env, WatchStartTracked, "watchStart"));
  exports.Set("watchStop", Napi::Function::New(env, WatchStop, "watchStop"));
  exports.Set("watchRef", Napi::Function::New(env, WatchRef, "watchRef"));
  exports.Set("slotGuard", Napi::Function::New(env, SlotGuardStart, "slotGuard"));
  exports.Set("slotGuardStop", Napi::Function::New(env, SlotGuardStop, "slotGuardStop"));
  TrackEnv(env);
  return exports;
}

}  // namespace

NODE_API_MODULE(ultradict, Init)
