// ultradict native layer: POSIX shared memory segments mapped as SharedArrayBuffers, futex wait/wake,
// and process/thread liveness. Everything else (formats, locking protocol, caching) lives in TypeScript.
//
// All platform code is in this file. Linux is the supported platform; elsewhere the module loads but
// every call reports UNSUPPORTED_PLATFORM so the TypeScript loader can throw a clear error.

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

namespace {

// ---------------------------------------------------------------------------------------------
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

void ThrowCode(Napi::Env env, const std::string& code, const std::string& message, int err = 0) {
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

// ---------------------------------------------------------------------------------------------
// Mappings. Each mapping is owned by exactly one SharedArrayBuffer backing store. It is detached early
// by unmap(id) (close()): the shared pages are replaced in place by private zero pages, so that a stale
// access through a view that outlived close() reads zeros instead of faulting, and nothing it writes
// reaches the segment. The address range itself is freed by the backing-store deleter (GC). The deleter
// may run on any thread, hence the mutex.

struct Mapping {
  void* addr;
  size_t length;
  uint32_t id;
  bool released;  // the address range is unmapped (only the struct is left)
  bool detached;  // the shared pages were replaced by private ones (unmap(id) ran)
};

std::mutex g_mappings_mutex;
std::unordered_map<uint32_t, Mapping*> g_mappings;
uint32_t g_next_id = 1;
size_t g_live_mappings = 0;

void MappingDeleter(void* data, size_t length, void* deleter_data) {
  Mapping* m = static_cast<Mapping*>(deleter_data);
  std::lock_guard<std::mutex> guard(g_mappings_mutex);
  if (!m->released) {
#if UD_SUPPORTED
    munmap(m->addr, m->length);
#endif
    m->released = true;
    if (!m->detached) {
      g_mappings.erase(m->id);
      g_live_mappings--;
    }
  }
  delete m;
}

// Node-API's own call for this, where the running Node has it (experimental since 2026; not in Node 20).
// A weak reference: null when the symbol is absent from the node binary, and then we use V8 directly.
extern "C" napi_status node_api_create_external_sharedarraybuffer(napi_env env, void* external_data,
                                                                   size_t byte_length,
                                                                   void (*finalize_cb)(void* data, void* hint),
                                                                   void* finalize_hint, napi_value* result)
    __attribute__((weak));

void MappingFinalizer(void* data, void* hint) {
  MappingDeleter(data, 0, hint);
}

v8::Local<v8::Value> ToV8(napi_value v) {
  v8::Local<v8::Value> local;
  static_assert(sizeof(local) == sizeof(v), "napi_value and v8::Local differ in size");
  std::memcpy(static_cast<void*>(&local), &v, sizeof(v));
  return local;
}

napi_value FromV8(v8::Local<v8::Value> local) {
  return reinterpret_cast<napi_value>(*local);
}

// Wraps [addr, addr+length) (an mmap of a segment) in a SharedArrayBuffer. Returns { buffer, id }.
Napi::Value WrapMapping(Napi::Env env, void* addr, size_t length) {
  Mapping* m = new Mapping{addr, length, 0, false, false};
  {
    std::lock_guard<std::mutex> guard(g_mappings_mutex);
    m->id = g_next_id++;
    if (g_next_id == 0) g_next_id = 1;
    g_mappings[m->id] = m;
    g_live_mappings++;
  }
  napi_value buffer = nullptr;
  if (node_api_create_external_sharedarraybuffer != nullptr) {
    if (node_api_create_external_sharedarraybuffer(env, addr, length, MappingFinalizer, m, &buffer) != napi_ok) {
      buffer = nullptr;
    }
  }
  bool viaNodeApi = buffer != nullptr;
  if (buffer == nullptr) {
    v8::Isolate* isolate = v8::Isolate::GetCurrent();
    std::unique_ptr<v8::BackingStore> store =
        v8::SharedArrayBuffer::NewBackingStore(addr, length, MappingDeleter, m);
    v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
    buffer = FromV8(sab);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("buffer", Napi::Value(env, buffer));
  result.Set("id", Napi::Number::New(env, m->id));
  result.Set("viaNodeApi", Napi::Boolean::New(env, viaNodeApi));
  return result;
}

#if UD_SUPPORTED
// Maps an open shm fd read-write and shared; closes the fd in every case. Null (JS error thrown) on failure.
void* MmapFd(Napi::Env env, int fd, size_t length, const std::string& name) {
  void* addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (addr == MAP_FAILED) {
    ThrowErrno(env, "mmap " + name, err);
    return nullptr;
  }
  return addr;
}

// Maps an open shm fd as a SharedArrayBuffer; closes the fd in every case.
Napi::Value MapFd(Napi::Env env, int fd, size_t length, const std::string& name) {
  void* addr = MmapFd(env, fd, length, name);
  if (addr == nullptr) return env.Undefined();
  return WrapMapping(env, addr, length);
}

// Maps an existing segment at its current size (EEMPTY if it has none). Null (JS error thrown) on failure.
// owner (if given) receives the file's owner uid and permission bits (st_uid, st_mode & 07777).
void* MapExisting(Napi::Env env, const std::string& name, size_t* length, struct stat* owner = nullptr) {
  int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, "shm_open " + name, errno);
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "fstat " + name, err);
    return nullptr;
  }
  if (st.st_size <= 0) {
    close(fd);
    ThrowCode(env, "EEMPTY", "segment " + name + " is empty");
    return nullptr;
  }
  *length = static_cast<size_t>(st.st_size);
  if (owner != nullptr) *owner = st;
  return MmapFd(env, fd, *length, name);
}
#endif

// The 32-bit cell at byte `offset` of [addr, addr + length), or null if it is outside or unaligned.
int32_t* CellAt(void* addr, size_t length, double offset) {
  if (!(offset >= 0) || offset + 4 > static_cast<double>(length) || static_cast<size_t>(offset) % 4 != 0) return nullptr;
  return reinterpret_cast<int32_t*>(static_cast<char*>(addr) + static_cast<size_t>(offset));
}

// create(name, size, mode, reserve = size) -> { buffer, id }. Exclusive: EEXIST if the name is taken.
// The first `reserve` bytes are allocated up front (posix_fallocate) so that a full /dev/shm is an
// ENOSPC error here, never a SIGBUS on a later write; the rest must be reserved (reserve()) before use.
Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  std::string name;
  if (!GetName(info, 0, &name)) return env.Undefined();
  if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsNumber()) {
    ThrowCode(env, "EINVAL", "create(name, size, mode) needs numbers");
    return env.Undefined();
  }
  double sizeD = info[1].As<Napi::Number>().DoubleValue();
  int64_t mode = info[2].As<Napi::Number>().Int64Value();
  if (!(sizeD >= 1 && sizeD <= 9007199254740991.0) || mode < 0 || mode > 0777) {
    ThrowCode(env, "EINVAL", "invalid segment size or mode");
    return env.Undefined();
  }
#if UD_SUPPORTED
  size_t size = static_cast<size_t>(sizeD);
  size_t reserve = size;
  if (info.Length() >= 4 && info[3].IsNumber()) {
    double r = info[3].As<Napi::Number>().DoubleValue();
    if (r >= 0 && r < sizeD) reserve = static_cast<size_t>(r);
  }
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) {
    ThrowErrno(env, "shm_open " + name, errno);
    return env.Undefined();
  }
  int err = 0;
  if (fchmod(fd, static_cast<mode_t>(mode)) != 0) err = errno;  // exact mode, whatever the umask
  if (err == 0 && ftruncate(fd, static_cast<off_t>(size)) != 0) err = errno;
  if (err == 0 && reserve > 0) {
    int r = posix_fallocate(fd, 0, static_cast<off_t>(reserve));
    if (r != 0 && r != EOPNOTSUPP && r != EINVAL) err = r;
  }
  if (err != 0) {
    close(fd);
    shm_unlink(name.c_str());
    ThrowErrno(env, "allocate " + name + " (" + std::to_string(size) + " bytes)", err);
    return env.Undefined();
  }
  return MapFd(env, fd, size, name);
#else
  return env.Undefined();
#endif
}

// reserve(buffer, offset, length, name): allocates the pages of [offset, offset + length) of a mapped
// segment, so that writing there cannot SIGBUS; ENOSPC if /dev/shm is full. Uses the mapping
// (MADV_POPULATE_WRITE, Linux 5.14+), else posix_fallocate on the segment by name.
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
bool GetCell(const Napi::CallbackInfo& info, int32_t** cell);
Napi::Value Reserve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  int32_t* base;
  if (!GetCell(info, &base)) return env.Undefined();  // validates buffer and a 4-aligned offset
  std::string name;
  if (!GetName(info, 3, &name)) return env.Undefined();
  v8::Local<v8::SharedArrayBuffer> sab = ToV8(info[0]).As<v8::SharedArrayBuffer>();
  double off = info[1].As<Napi::Number>().DoubleValue();
  double len = info.Length() >= 3 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
  if (!(len > 0) || off + len > static_cast<double>(sab->ByteLength())) {
    ThrowCode(env, "EINVAL", "reserve: range beyond the segment");
    return env.Undefined();
  }
#if UD_SUPPORTED
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t start = reinterpret_cast<uintptr_t>(sab->Data()) + static_cast<size_t>(off);
  uintptr_t stop = start + static_cast<size_t>(len);
  uintptr_t a = start & ~static_cast<uintptr_t>(page - 1);
  if (madvise(reinterpret_cast<void*>(a), stop - a, MADV_POPULATE_WRITE) == 0) return Napi::Boolean::New(env, true);
  int err = errno;
  if (err == EFAULT || err == ENOMEM) {
    ThrowCode(env, "ENOSPC", "allocate " + name + ": no space left in shared memory", ENOSPC);
    return env.Undefined();
  }
  // no MADV_POPULATE_WRITE (older kernel): allocate through the file
  int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, "shm_open " + name, errno);
    return env.Undefined();
  }
  int r = posix_fallocate(fd, static_cast<off_t>(off), static_cast<off_t>(len));
  close(fd);
  if (r != 0 && r != EOPNOTSUPP && r != EINVAL) {
    ThrowErrno(env, "allocate " + name, r);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
#else
  return env.Undefined();
#endif
}

// open(name) -> { buffer, id, uid, mode }: maps an existing segment at its current size; uid and mode
// are the owner and permission bits of the file that was mapped (fstat of the same descriptor).
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  std::string name;
  if (!GetName(info, 0, &name)) return env.Undefined();
#if UD_SUPPORTED
  size_t length = 0;
  struct stat st;
  void* addr = MapExisting(env, name, &length, &st);
  if (addr == nullptr) return env.Undefined();
  Napi::Value mapped = WrapMapping(env, addr, length);
  if (!mapped.IsObject()) return mapped;
  Napi::Object result = mapped.As<Napi::Object>();
  result.Set("uid", Napi::Number::New(env, static_cast<double>(st.st_uid)));
  result.Set("mode", Napi::Number::New(env, static_cast<double>(st.st_mode & 07777)));
  return result;
#else
  return env.Undefined();
#endif
}

// unmap(id) -> boolean: releases a mapping now. The SharedArrayBuffer must not be touched afterwards;
// the TypeScript layer drops every view of it first.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  std::lock_guard<std::mutex> guard(g_mappings_mutex);
  auto it = g_mappings.find(id);
  if (it == g_mappings.end()) return Napi::Boolean::New(env, false);
  Mapping* m = it->second;
#if UD_SUPPORTED
  void* r = mmap(m->addr, m->length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) {
    munmap(m->addr, m->length);
    m->released = true;  // the deleter will only free the struct
  } else {
    m->detached = true;  // the deleter will unmap the private pages
  }
#else
  m->released = true;
#endif
  g_mappings.erase(it);
  g_live_mappings--;
  return Napi::Boolean::New(env, true);
}

Napi::Value LiveMappings(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> guard(g_mappings_mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(g_live_mappings));
}

// unlink(name) -> true if removed, false if it did not exist.
Napi::Value Unlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  std::string name;
  if (!GetName(info, 0, &name)) return env.Undefined();
#if UD_SUPPORTED
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "shm_unlink " + name, errno);
#endif
  return env.Undefined();
}

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// Liveness. A thread is identified by (pid, tid, start time in clock ticks since boot), read from
// /proc/<pid>/task/<tid>/stat, so that a reused pid or tid is never mistaken for the original.

#if UD_SUPPORTED
// Returns start time (>= 0), -1 if the thread does not exist or is a zombie, -2 if unknown.
double ReadStartTime(int pid, int tid) {
  char path[96];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH ? -1 : -2;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return -1;  // the task vanished while we read it
  buf[n] = 0;
  char* p = strrchr(buf, ')');  // comm may contain spaces and parentheses
  if (!p) return -2;
  p++;
  // after ")": " state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  // cutime cstime priority nice num_threads itrealvalue starttime" -> state is field 3, starttime 22.
  int field = 2;
  char state = 0;
  while (*p) {
    while (*p == ' ') p++;
    field++;
    if (field == 3) state = *p;
    if (field == 22) {
      if (state == 'Z' || state == 'X' || state == 'x') return -1;
      return strtod(p, nullptr);
    }
    while (*p && *p != ' ') p++;
  }
  return -2;
}

double PidNamespace() {
  struct stat st;
  if (stat("/proc/self/ns/pid", &st) != 0) return 0;
  return static_cast<double>(st.st_ino);
}
#endif

// threadStartTime(pid, tid) -> start time, -1 dead, -2 unknown
Napi::Value ThreadStartTime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    ThrowCode(env, "EINVAL", "threadStartTime(pid, tid)");
    return env.Undefined();
  }
  int pid = info[0].As<Napi::Number>().Int32Value();
  int tid = info[1].As<Napi::Number>().Int32Value();
  if (pid <= 0 || tid <= 0) return Napi::Number::New(env, -1);
#if UD_SUPPORTED
  return Napi::Number::New(env, ReadStartTime(pid, tid));
#else
  return env.Undefined();
#endif
}

// processAlive(pid) -> true/false (kill(pid, 0); EPERM counts as alive)
Napi::Value ProcessAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
  int pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) return Napi::Boolean::New(env, false);
#if UD_SUPPORTED
  if (kill(pid, 0) == 0) return Napi::Boolean::New(env, ReadStartTime(pid, pid) != -1);
  return Napi::Boolean::New(env, errno == EPERM);
#else
  return env.Undefined();
#endif
}

// self() -> { pid, tid, startTime, pidNamespace } of the calling thread
Napi::Value Self(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
#if UD_SUPPORTED
  int pid = getpid();
  int tid = static_cast<int>(syscall(SYS_gettid));
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, pid));
  o.Set("tid", Napi::Number::New(env, tid));
  o.Set("startTime", Napi::Number::New(env, ReadStartTime(pid, tid)));
  o.Set("pidNamespace", Napi::Number::New(env, PidNamespace()));
  return o;
#else
  return env.Undefined();
#endif
}


// ---------------------------------------------------------------------------------------------
// Change watchers. A watcher is a native thread that futex-waits on a 32-bit counter in a segment and
// calls a JS function (through a thread-safe function) whenever the counter moves; calls coalesce
// while one is pending. The thread maps the segment itself: on worker teardown V8 frees the
// SharedArrayBuffer mappings before the cleanup hooks run, so the thread must not use them.

struct Watcher {
  uint32_t id;
  void* addr = nullptr;
  size_t length = 0;
  int32_t* cell = nullptr;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> pending{false};
  Napi::ThreadSafeFunction tsfn;
  bool stopped = false;
  // listener counters decremented if the env is torn down while watching (worker terminated)
  int32_t* dec1 = nullptr;
  int32_t* dec2 = nullptr;
};

std::mutex g_watchers_mutex;
std::unordered_map<uint32_t, Watcher*> g_watchers;  // watchers of every env (thread) in the process
uint32_t g_next_watcher = 1;

#if UD_SUPPORTED
void WatchLoop(Watcher* w, int32_t last) {
  while (!w->stop.load()) {
    int32_t v = __atomic_load_n(w->cell, __ATOMIC_SEQ_CST);
    if (v != last) {
      last = v;
      if (!w->pending.exchange(true)) {
        napi_status st = w->tsfn.NonBlockingCall([w](Napi::Env env, Napi::Function fn) {
          w->pending.store(false);
          if (w->stopped || env == nullptr || fn.IsEmpty()) return;
          // raw call: during worker termination JS cannot run and the call fails; that is fine here
          // (node-addon-api's Call would turn the failure into a fatal error)
          napi_value recv;
          if (napi_get_undefined(env, &recv) != napi_ok) return;
          napi_call_function(env, recv, fn, 0, nullptr, nullptr);
        });
        if (st != napi_ok) w->pending.store(false);
      }
      continue;
    }
    // re-check the stop flag at least every 100 ms (a stop's wake-up can come just before the wait)
    struct timespec ts = {0, 100 * 1000 * 1000};
    syscall(SYS_futex, w->cell, FUTEX_WAIT, v, &ts, nullptr, 0);
  }
}
#endif

void StopWatcher(Watcher* w, bool teardown = false) {
  // called on the JS thread that owns the watcher; w stays allocated until the tsfn finalizer
  if (w->stopped) return;
  if (teardown) {
    // the JS side never got to stop listening: take this listener out of the shared counts
    if (w->dec1 != nullptr) __atomic_sub_fetch(w->dec1, 1, __ATOMIC_SEQ_CST);
    if (w->dec2 != nullptr) __atomic_sub_fetch(w->dec2, 1, __ATOMIC_SEQ_CST);
  }
  w->stopped = true;
  w->stop.store(true);
#if UD_SUPPORTED
  syscall(SYS_futex, w->cell, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
#endif
  if (w->thread.joinable()) w->thread.join();
#if UD_SUPPORTED
  munmap(w->addr, w->length);
#endif
  {
    std::lock_guard<std::mutex> guard(g_watchers_mutex);
    g_watchers.erase(w->id);
  }
  w->tsfn.Release();  // the finalizer deletes w once queued calls have run
}

// watchStart(segmentName, byteOffset, callback, lastSeen, decOffset1?, decOffset2?) -> id. Starts unref'd.
Napi::Value WatchStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  std::string name;
  if (!GetName(info, 0, &name)) return env.Undefined();
  if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsFunction()) {
    ThrowCode(env, "EINVAL", "watchStart(name, byteOffset, callback)");
    return env.Undefined();
  }
  double offset = info[1].As<Napi::Number>().DoubleValue();
#if UD_SUPPORTED
  size_t length = 0;
  void* addr = MapExisting(env, name, &length);
  if (addr == nullptr) return env.Undefined();
  int32_t* cell = CellAt(addr, length, offset);
  if (cell == nullptr) {
    munmap(addr, length);
    ThrowCode(env, "EINVAL", "watchStart: offset outside the segment");
    return env.Undefined();
  }
  Watcher* w = new Watcher();
  w->addr = addr;
  w->length = length;
  w->cell = cell;
  if (info.Length() > 4 && info[4].IsNumber()) w->dec1 = CellAt(addr, length, info[4].As<Napi::Number>().DoubleValue());
  if (info.Length() > 5 && info[5].IsNumber()) w->dec2 = CellAt(addr, length, info[5].As<Napi::Number>().DoubleValue());
  w->tsfn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "ultradict-watch", 0, 1, w,
                                          [](Napi::Env, Watcher* self) { delete self; });
  w->tsfn.Unref(env);
  {
    std::lock_guard<std::mutex> guard(g_watchers_mutex);
    w->id = g_next_watcher++;
    g_watchers[w->id] = w;
  }
  // the caller's last seen value: a change between its last sync and the thread starting is not lost
  int32_t initial = info.Length() >= 4 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value()
                                                             : __atomic_load_n(w->cell, __ATOMIC_SEQ_CST);
  w->thread = std::thread(WatchLoop, w, initial);
  return Napi::Number::New(env, w->id);
#else
  return env.Undefined();
#endif
}

Watcher* FindWatcher(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) return nullptr;
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  std::lock_guard<std::mutex> guard(g_watchers_mutex);
  auto it = g_watchers.find(id);
  return it == g_watchers.end() ? nullptr : it->second;
}

// watchStop(id) -> boolean
Napi::Value WatchStop(const Napi::CallbackInfo& info) {
  Watcher* w = FindWatcher(info);
  if (w == nullptr) return Napi::Boolean::New(info.Env(), false);
  StopWatcher(w);
  return Napi::Boolean::New(info.Env(), true);
}

// watchRef(id, ref) -> boolean: whether the watcher keeps the event loop alive
Napi::Value WatchRef(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Watcher* w = FindWatcher(info);
  if (w == nullptr || w->stopped) return Napi::Boolean::New(env, false);
  if (info.Length() >= 2 && info[1].ToBoolean().Value()) {
    w->tsfn.Ref(env);
  } else {
    w->tsfn.Unref(env);
  }
  return Napi::Boolean::New(env, true);
}

// ---------------------------------------------------------------------------------------------
// Slot guards. A thread's attach slot in a control block is freed by JS when it closes the dict; a
// worker that is terminated never gets to. A guard maps the control segment itself (V8 may free the
// SharedArrayBuffer mappings before the cleanup hooks run) and, if the env is torn down while the slot
// is still this thread's claim (same tid and claim epoch), frees it: listener counts out, pid cell 0.

struct SlotGuard {
  void* addr = nullptr;
  size_t length = 0;
  int32_t* pid = nullptr;
  int32_t* tid = nullptr;
  int32_t* epoch = nullptr;
  int32_t* listening = nullptr;
  int32_t* total = nullptr;
  int32_t pid_value = 0;
  int32_t tid_value = 0;
  int32_t epoch_value = 0;
};

void FreeGuardedSlot(SlotGuard* g) {
  if (__atomic_load_n(g->epoch, __ATOMIC_SEQ_CST) == g->epoch_value &&
      __atomic_load_n(g->tid, __ATOMIC_SEQ_CST) == g->tid_value &&
      __atomic_load_n(g->pid, __ATOMIC_SEQ_CST) == g->pid_value) {
    int32_t n = __atomic_exchange_n(g->listening, 0, __ATOMIC_SEQ_CST);
    if (n != 0) __atomic_sub_fetch(g->total, n, __ATOMIC_SEQ_CST);
    int32_t expected = g->pid_value;
    __atomic_compare_exchange_n(g->pid, &expected, 0, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  }
}

// Per-env (main thread or worker) list of watcher ids and slot guards, ended when the env is torn down.
struct EnvWatchers {
  std::unordered_set<uint32_t> ids;
  std::unordered_map<uint32_t, SlotGuard*> guards;
  uint32_t next_guard = 1;
};

thread_local EnvWatchers* t_env_watchers = nullptr;  // one env per JS thread

Napi::Value WatchStartTracked(const Napi::CallbackInfo& info) {
  Napi::Value id = WatchStart(info);
  if (id.IsNumber() && t_env_watchers != nullptr) t_env_watchers->ids.insert(id.As<Napi::Number>().Uint32Value());
  return id;
}

// slotGuard(controlName, [pidOff, tidOff, epochOff, listeningOff, totalOff], pid, tid, epoch) -> id
Napi::Value SlotGuardStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckSupported(env)) return env.Undefined();
  std::string name;
  if (!GetName(info, 0, &name)) return env.Undefined();
  if (info.Length() < 5 || !info[1].IsArray() || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber() ||
      info[1].As<Napi::Array>().Length() != 5 || t_env_watchers == nullptr) {
    ThrowCode(env, "EINVAL", "slotGuard(name, offsets[5], pid, tid, epoch)");
    return env.Undefined();
  }
#if UD_SUPPORTED
  size_t length = 0;
  void* addr = MapExisting(env, name, &length);
  if (addr == nullptr) return env.Undefined();
  Napi::Array offs = info[1].As<Napi::Array>();
  int32_t* cells[5];
  for (uint32_t i = 0; i < 5; i++) {
    Napi::Value o = offs.Get(i);
    cells[i] = o.IsNumber() ? CellAt(addr, length, o.As<Napi::Number>().DoubleValue()) : nullptr;
    if (cells[i] == nullptr) {
      munmap(addr, length);
      ThrowCode(env, "EINVAL", "slotGuard: offset outside the segment");
      return env.Undefined();
    }
  }
  SlotGuard* g = new SlotGuard();
  g->addr = addr;
  g->length = length;
  g->pid = cells[0];
  g->tid = cells[1];
  g->epoch = cells[2];
  g->listening = cells[3];
  g->total = cells[4];
  g->pid_value = info[2].As<Napi::Number>().Int32Value();
  g->tid_value = info[3].As<Napi::Number>().Int32Value();
  g->epoch_value = info[4].As<Napi::Number>().Int32Value();
  uint32_t id = t_env_watchers->next_guard++;
  t_env_watchers->guards[id] = g;
  return Napi::Number::New(env, id);
#else
  return env.Undefined();
#endif
}

// slotGuardStop(id) -> boolean: the slot was released by JS; drop the guard without touching the slot
Napi::Value SlotGuardStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || t_env_watchers == nullptr) return Napi::Boolean::New(env, false);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  auto it = t_env_watchers->guards.find(id);
  if (it == t_env_watchers->guards.end()) return Napi::Boolean::New(env, false);
#if UD_SUPPORTED
  munmap(it->second->addr, it->second->length);
#endif
  delete it->second;
  t_env_watchers->guards.erase(it);
  return Napi::Boolean::New(env, true);
}

void EndEnvGuards(EnvWatchers* ew) {
  for (auto& kv : ew->guards) {
    FreeGuardedSlot(kv.second);
#if UD_SUPPORTED
    munmap(kv.second->addr, kv.second->length);
#endif
    delete kv.second;
  }
  ew->guards.clear();
}

void StopEnvWatchers(EnvWatchers* ew) {
  for (uint32_t id : ew->ids) {
    Watcher* w = nullptr;
    {
      std::lock_guard<std::mutex> guard(g_watchers_mutex);
      auto it = g_watchers.find(id);
      if (it != g_watchers.end()) w = it->second;
    }
    if (w != nullptr) StopWatcher(w, true);
  }
  ew->ids.clear();
}

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
  EnvWatchers* ew = new EnvWatchers();
  t_env_watchers = ew;
  env.AddCleanupHook([ew]() {  // env teardown (process exit, worker terminate): stop its threads
    StopEnvWatchers(ew);
    EndEnvGuards(ew);  // after the watchers, which take their own listener counts out first
    if (t_env_watchers == ew) t_env_watchers = nullptr;
    delete ew;
  });
  return exports;
}

}  // namespace

NODE_API_MODULE(ultradict, Init)
