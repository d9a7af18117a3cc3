// Futex wait and wake on a 32-bit cell of a mapped segment, from JS.

#include "common.h"

namespace ud {

// Futex on a 32-bit cell of a mapped SharedArrayBuffer (shared, not private: works across processes).

bool GetCell(const Napi::CallbackInfo& info, int32_t** cell) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsNumber()) {
    ThrowCode(env, "EINVAL", "futex: (buffer, byteOffset, ...) expected");
    return false;
  }
  v8::Local<v8::Value> v = ToV8(info[0]);
  if (v.IsEmpty() || !v->IsSharedArrayBuffer()) {
    ThrowCode(env, "EINVAL", "futex: buffer must be a SharedArrayBuffer");
    return false;
  }
  v8::Local<v8::SharedArrayBuffer> sab = v.As<v8::SharedArrayBuffer>();
  *cell = CellAt(sab->Data(), sab->ByteLength(), info[1].As<Napi::Number>().DoubleValue());
  if (*cell == nullptr) {
    ThrowCode(env, "EINVAL", "futex: offset out of bounds or unaligned");
    return false;
  }
  return true;
}

// futexWait(buffer, byteOffset, expected, timeoutMs) -> 0 woken, 1 timed out, 2 value differed, 3 EINTR
Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  int32_t* cell;
  if (!GetCell(info, &cell)) return env.Undefined();
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) {
    ThrowCode(env, "EINVAL", "futexWait(buffer, byteOffset, expected, timeoutMs)");
    return env.Undefined();
  }
  int32_t expected = info[2].As<Napi::Number>().Int32Value();
  double ms = info[3].As<Napi::Number>().DoubleValue();
  if (!(ms >= 0)) ms = 0;
  if (ms > 86400000.0) ms = 86400000.0;
#if UD_SUPPORTED
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((ms - static_cast<double>(ts.tv_sec) * 1000) * 1e6);
  long r = syscall(SYS_futex, cell, FUTEX_WAIT, expected, &ts, nullptr, 0);
  if (r == 0) return Napi::Number::New(env, 0);
  int err = errno;
  if (err == ETIMEDOUT) return Napi::Number::New(env, 1);
  if (err == EAGAIN) return Napi::Number::New(env, 2);
  if (err == EINTR) return Napi::Number::New(env, 3);
  ThrowErrno(env, "futex wait", err);
#endif
  return env.Undefined();
}

// futexWake(buffer, byteOffset, count) -> number of waiters woken
Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  int32_t* cell;
  if (!GetCell(info, &cell)) return env.Undefined();
  int32_t count = info.Length() >= 3 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 1;
  if (count <= 0) count = 1;
#if UD_SUPPORTED
  long r = syscall(SYS_futex, cell, FUTEX_WAKE, count, nullptr, nullptr, 0);
  if (r >= 0) return Napi::Number::New(env, static_cast<double>(r));
  ThrowErrno(env, "futex wake", errno);
#endif
  return env.Undefined();
}

}  // namespace ud
