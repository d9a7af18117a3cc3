// Change watchers (native threads that call JS when a counter moves), slot guards, and their end when an env is torn down.

#include "common.h"

namespace ud {

// Change watchers. A watcher is a native thread that futex-waits on a 32-bit counter in a segment and
// calls a JS function (through a thread-safe function) whenever the counter moves; calls coalesce
// while one is pending. The thread maps the segment itself: on worker teardown V8 frees the
// SharedArrayBuffer mappings before the cleanup hooks run, so the thread must not use them.

namespace {

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

}  // namespace

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

// Slot guards. A thread's attach slot in a control block is freed by JS when it closes the dict; a
// worker that is terminated never gets to. A guard maps the control segment itself (V8 may free the
// SharedArrayBuffer mappings before the cleanup hooks run) and, if the env is torn down while the slot
// is still this thread's claim (same tid and claim epoch), frees it: listener counts out, pid cell 0.

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

void TrackEnv(Napi::Env env) {
  EnvWatchers* ew = new EnvWatchers();
  t_env_watchers = ew;
  env.AddCleanupHook([ew]() {  // env teardown (process exit, worker terminate): stop its threads
    StopEnvWatchers(ew);
    EndEnvGuards(ew);  // after the watchers, which take their own listener counts out first
    if (t_env_watchers == ew) t_env_watchers = nullptr;
    delete ew;
  });
}

}  // namespace ud
