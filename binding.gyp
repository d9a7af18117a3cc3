{
  "targets": [
    {
      "target_name": "ultradict",
      "sources": ["src/shm/native/addon.cc", "src/shm/native/common.cc", "src/shm/native/segments.cc", "src/shm/native/futex.cc", "src/shm/native/liveness.cc", "src/shm/native/watchers.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='linux'", { "libraries": ["-lrt"] }]
      ]
    }
  ]
}
