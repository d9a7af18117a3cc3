// Shared by the addon's files: platform includes, the UD_SUPPORTED switch, error and argument helpers, and the calls Init registers.

#ifndef ULTRADICT_COMMON_H_
#define ULTRADICT_COMMON_H_

#include <node.h>  // v8: Node 20's Node-API cannot wrap external memory in a SharedArrayBuffer
#include <napi.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#if defined(__linux__)
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#define UD_SUPPORTED 1
#else
#define UD_SUPPORTED 0
#endif

// Shared between the addon's files only: hidden, as the anonymous namespace of a single file would be.
namespace __attribute__((visibility("hidden"))) ud {

// ---- errors and arguments (common.cc) --------------------------------------------------------

void ThrowCode(Napi::Env env, const std::string& code, const std::string& message, int err = 0);
void ThrowErrno(Napi::Env env, const std::string& what, int err);
bool CheckSupported(Napi::Env env);
bool GetName(const Napi::CallbackInfo& info, size_t index, std::string* out);

// napi_value and v8::Local<v8::Value> are the same pointer-sized handle.
inline v8::Local<v8::Value> ToV8(napi_value v) {
  v8::Local<v8::Value> local;
  static_assert(sizeof(local) == sizeof(v), "napi_value and v8::Local differ in size");
  std::memcpy(static_cast<void*>(&local), &v, sizeof(v));
  return local;
}

inline napi_value FromV8(v8::Local<v8::Value> local) {
  return reinterpret_cast<napi_value>(*local);
}

// The 32-bit cell at byte `offset` of [addr, addr + length), or null if it is outside or unaligned.
inline int32_t* CellAt(void* addr, size_t length, double offset) {
  if (!(offset >= 0) || offset + 4 > static_cast<double>(length) || static_cast<size_t>(offset) % 4 != 0) return nullptr;
  return reinterpret_cast<int32_t*>(static_cast<char*>(addr) + static_cast<size_t>(offset));
}

// ---- segments (segments.cc) ------------------------------------------------------------------

#if UD_SUPPORTED
// Maps an existing segment at its current size; null (JS error thrown) on failure. owner receives its fstat.
void* MapExisting(Napi::Env env, const std::string& name, size_t* length, struct stat* owner = nullptr);
#endif

Napi::Value Create(const Napi::CallbackInfo& info);
Napi::Value Reserve(const Napi::CallbackInfo& info);
Napi::Value Open(const Napi::CallbackInfo& info);
Napi::Value Unmap(const Napi::CallbackInfo& info);
Napi::Value LiveMappings(const Napi::CallbackInfo& info);
Napi::Value Unlink(const Napi::CallbackInfo& info);

// ---- futex (futex.cc) ------------------------------------------------------------------------

// The 32-bit cell addressed by (SharedArrayBuffer info[0], byte offset info[1]); false (JS error thrown) if invalid.
bool GetCell(const Napi::CallbackInfo& info, int32_t** cell);
Napi::Value FutexWait(const Napi::CallbackInfo& info);
Napi::Value FutexWake(const Napi::CallbackInfo& info);

// ---- liveness (liveness.cc) ------------------------------------------------------------------

Napi::Value ThreadStartTime(const Napi::CallbackInfo& info);
Napi::Value ProcessAlive(const Napi::CallbackInfo& info);
Napi::Value Self(const Napi::CallbackInfo& info);

// ---- watchers and slot guards (watchers.cc) --------------------------------------------------

Napi::Value WatchStartTracked(const Napi::CallbackInfo& info);
Napi::Value WatchStop(const Napi::CallbackInfo& info);
Napi::Value WatchRef(const Napi::CallbackInfo& info);
Napi::Value SlotGuardStart(const Napi::CallbackInfo& info);
Napi::Value SlotGuardStop(const Napi::CallbackInfo& info);
// Tracks this env's (main thread's or worker's) watchers and slot guards, ended when the env is torn down.
void TrackEnv(Napi::Env env);

}  // namespace ud

#endif  // ULTRADICT_COMMON_H_
