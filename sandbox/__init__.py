"""Sandboxes: how a worker process starts and is contained.

Start with spec.py, the seam the gateway's pool uses (SandboxSpec, Sandbox,
SandboxBackend), and select.py, which picks a backend once at start-up and
says why anything is weaker than full isolation.

Backends:
- namespaced.py   user, pid, mount, net, uts, ipc and cgroup namespaces, a
                  private read-only root, cgroup limits, no capabilities,
                  no_new_privs and seccomp; the default wherever it works.
- process.py      plain child processes; the loud fallback.

What namespaced.py is made of:
- nsspawn.py      the thin wrapper over csrc/spawn.c (OSError names the step)
- rootfs.py       the root file system as a plan of mount operations (pure)
- prepared_roots.py the part of a root every sandbox of a runtime shares,
                  built once and cloned into each (again when a source changes)
- seccomp.py      what the seccomp allow-list (csrc/seccomp.c) decides, read
                  from the filter itself (doctor and the tests)
- cgroups.py      the limits interface; cgroup_v1.py and cgroup_v2.py
                  (freezer_state.py: the freeze switch, held open)
- proc_stat.py    /proc/<pid>/stat read in one place (also for bench/ and tests)
- netns_pool.py   network namespaces made ahead of time, one per sandbox
                  (reuse, when found exactly as made, only if asked for)
- egress.py       opt-in egress: a veth pair and nftables NAT (pyroute2)
- attach.py       mounting code into an already running (spare) sandbox
- zygote.py       the runtime zygote (one per Python version): an interpreter
                  with the runtime imported, forked into each new sandbox
                  instead of an interpreter start (zygote_client.py is the
                  server's side, spawn_wire.py the requests, kept out of the
                  zygote's heap; fork_hooks.py and zygote_heap.py keep what a
                  fork writes, and so un-shares, small)

What every backend runs:
- interpreters.py the host's Python interpreters, one per Lambda runtime name
- runtime_root.py what a worker of each interpreter imports (/var/runtime)
"""
