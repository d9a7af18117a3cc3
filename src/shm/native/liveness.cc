// Process and thread liveness: thread start times from /proc, whether a process is alive, the calling thread's identity.

#include "common.h"

namespace ud {

// Liveness. A thread is identified by (pid, tid, start time in clock ticks since boot), read from
// /proc/<pid>/task/<tid>/stat, so that a reused pid or tid is never mistaken for the original.

namespace {

#if UD_SUPPORTED
// Returns start time (>= 0), -1 if the thread does not exist or is a zombie, -2 if unknown.
double ReadStartTime(int pid, int tid) {
  char path[96];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH ? -1 : -2;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  int err = errno;
  close(fd);
  if (n == 0) return -1;  // the task vanished while we read it
  if (n < 0) return err == ESRCH || err == ENOENT ? -1 : -2;  // EINTR, EAGAIN, ...: unknown, never dead
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

}  // namespace

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

}  // namespace ud
