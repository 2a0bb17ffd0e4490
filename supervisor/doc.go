// Package supervisor runs containers and keeps them running.
//
// It owns a container's lifecycle at every rung of the isolation ladder
// (chroot, namespaces, userns, cgroups; Spec.Rung):
//   - the process spec (Spec, FromManifest, Command): root, command, env,
//     workdir, user and groups resolved from the image's /etc/passwd,
//     rlimits, stop signal and timeout, readiness, rung;
//   - the shim (ShimMain), PID 1's binary re-executed as "init shim",
//     which chroots, sets rlimits and no_new_privs, drops capabilities
//     and credentials, and execs the workload (shim_linux.go); at the
//     namespaces rung it starts in new mount, pid, uts and ipc
//     namespaces, mounts a private /proc, a read-only /sys and a minimal
//     /dev (shim_mount_linux.go), and stays as the container's PID 1,
//     forwarding signals and reaping, while an inner shim pivots into
//     the root and execs the workload (shim_ns_linux.go); at the userns
//     rung all of it in a user namespace mapping the container's ids to
//     Spec.IDs (subpackage idmap: ranges, idmapped layers, shifting);
//     with Spec.PrivateNet also in a new network namespace, which
//     Options.Network attaches (subpackage network: the bridge, veth
//     pairs, NAT) while the shim waits on its network gate; and in a
//     cgroup of its own (subpackage cgroup) wherever the node has them;
//   - applying the restart policy (subpackage restart: Policy.Decide,
//     pure, and the History the caller persists; tor uses it too),
//     with backoff timers tested under testing/synctest;
//   - supervision (Supervisor): one goroutine per container, a table of
//     state × event (container.go), stop with SIGTERM, grace and SIGKILL
//     of the whole process group, readiness probes;
//   - logs: stdout and stderr into bounded, rotated, timestamped files
//     (ReadLogs, Follow);
//   - a handover in place (handover.go): Freeze stops every container's
//     supervision at a safe point without touching a process and
//     describes it (Frozen, JSON, plus the log and readiness pipes' read
//     ends as files); a new Supervisor, in the init that PID 1 execs,
//     Adopts it: the same pids (waited for through a child.Adopter),
//     state, restart history, backoff and stop timers, readiness waits,
//     cgroups, and logs with no line lost or written twice (the copiers
//     stop at a line boundary and hand over the partial line). Thaw
//     undoes a Freeze. A frozen Supervisor answers ErrFrozen.
//
// The handover's contract, for the init that drives it:
//   - stop reaping before Freeze (an exit reaped after it dies with
//     the old process) and start again before Thaw;
//   - hand over every file Freeze returns, without close-on-exec, and
//     the Frozen JSON; the new init's reaper expects each Run.PID before
//     its first reap, and Adopt comes after UseCgroups;
//   - Freeze waits for runs whose shim has not exec'd yet (their status
//     pipe), never for an exit; a stop in progress is handed over;
//   - Adopt refuses a description that does not fit (ErrHandover)
//     before it adopts anything; a pid it cannot adopt is a run lost,
//     an exit 255 under the restart policy.
//
// It does not own HTTP, tor or bbolt: it is handed Specs and Histories
// and reports Events through a callback; init persists them and maps
// them to the API's wire types. It does not unpack images, mount
// volumes, or reap: it starts processes through a child.Starter (PID 1's
// reaper, the one caller of wait4) and signals them through a Killer.
// It imports manifest for the Manifest type only.
//
// Wiring, in init: dispatch "init shim" to ShimMain before anything
// else; New(Options{Starter: the reaper, OnEvent: persist History and
// publish}); Add each container from state at boot with its History and
// desired state; StopAll at shutdown. State.String and EventType are the
// API's wire names.
//
// WORKLOAD.md is the contract a workload can rely on: environment,
// HOME, signals, exit 125, readiness and logs, and what each rung adds.
package supervisor
