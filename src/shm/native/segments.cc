// Shared memory segments: create/open/reserve/unmap/unlink, each mapping wrapped in a SharedArrayBuffer.

#include "common.h"

namespace ud {

namespace {

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
#endif

}  // namespace

#if UD_SUPPORTED
// Maps an existing segment at its current size (EEMPTY if it has none). Null (JS error thrown) on failure.
// owner (if given) receives the file's owner uid and permission bits (st_uid, st_mode & 07777).
void* MapExisting(Napi::Env env, const std::string& name, size_t* length, struct stat* owner) {
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

}  // namespace ud
