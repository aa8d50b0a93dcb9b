/*
 * seccomp-policy.c — the sandbox's seccomp profile, compiled by libseccomp.
 *
 * Two filters are produced; bwrap installs both (--add-seccomp-fd, twice) on
 * the sandbox's PID 1 and on the target right before execve, after its own
 * setup, so bwrap's own mount/namespace syscalls are never filtered.
 *
 *   1. "main": a DEFAULT-DENY ALLOWLIST. Every syscall not listed in ALLOWED
 *      (or allowed by an argument rule below) fails with EPERM, so programs get
 *      a clean "Operation not permitted". The few syscalls libc probes and
 *      falls back from fail with ENOSYS instead (FALLBACK_ENOSYS: clone3, so
 *      glibc falls back to clone(2) whose flags we can inspect). DENIED is the
 *      documented list of dangerous syscalls; they get the default EPERM and
 *      the helper refuses to build if one of them ever appears in ALLOWED.
 *      A foreign architecture (i386 via int 0x80, x32) kills the process: the
 *      filter only knows the native ABI.
 *   2. "args": default ALLOW; only adds argument-level denials that cannot be
 *      expressed as allow rules (libseccomp refuses to mix an unconditional
 *      allow with a conditional deny on the same syscall): ioctl TIOCSTI and
 *      TIOCLINUX, compared on the low 32 bits because the kernel truncates
 *      the command to an unsigned int. Kernel semantics: when several filters
 *      are installed, the most restrictive verdict wins.
 *
 * Never hand-assembled BPF: everything below goes through libseccomp.
 */
#define _GNU_SOURCE
#include "seccomp-policy.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

/* Plain allowlist: syscalls any ordinary program (sh, coreutils, python,
 * node, gcc, git, make) needs, and that only act on the caller's own
 * process, its own files (already confined by the mount namespace) or its
 * own namespaces. Names that do not exist on the native architecture are
 * skipped (e.g. "open" on aarch64). */
static const char *const ALLOWED[] = {
    /* file descriptors and file I/O */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
    "lseek", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "fsync",
    "fdatasync", "sync", "syncfs", "sync_file_range", "fallocate", "ftruncate", "truncate",
    "sendfile", "copy_file_range", "splice", "tee", "vmsplice", "readahead", "fadvise64",
    /* metadata and directories */
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "mkdir",
    "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link",
    "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown",
    "fchown", "lchown", "fchownat", "utime", "utimes", "utimensat", "futimesat", "umask",
    "getcwd", "chdir", "fchdir", "getxattr", "lgetxattr", "fgetxattr", "listxattr",
    "llistxattr", "flistxattr", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
    "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1", "inotify_add_watch",
    "inotify_rm_watch",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "memfd_create",
    "get_mempolicy", "pkey_alloc", "pkey_free", "pkey_mprotect",
    /* processes and threads (clone/unshare/personality: see rules below) */
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "getpid", "getppid",
    "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "set_tid_address",
    "set_robust_list", "rseq", "futex", "futex_waitv", "arch_prctl", "prctl",
    "set_thread_area", "get_thread_area", "sched_yield", "sched_getaffinity",
    "sched_setaffinity", "sched_getparam", "sched_setparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_getattr", "sched_setattr", "getpriority", "setpriority",
    "ioprio_get", "ioprio_set", "getcpu", "seccomp",
    /* credentials: all of these can only keep or drop what the process has */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "capget", "capset",
    /* resource limits (raising a hard limit needs CAP_SYS_RESOURCE on the host) */
    "getrlimit", "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname",
    /* signals, time, timers */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigsuspend", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "signalfd",
    "signalfd4", "pause", "alarm", "nanosleep", "clock_nanosleep", "clock_gettime",
    "clock_getres", "gettimeofday", "time", "getitimer", "setitimer", "timer_create",
    "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "eventfd", "eventfd2", "restart_syscall",
    /* polling */
    "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2",
    /* sockets (socket/socketpair: see rules below) */
    "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    "setsockopt", "getsockopt",
    /* System V and POSIX IPC: the sandbox has its own IPC namespace */
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr",
    /* legacy (non io_uring) AIO, randomness */
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "getrandom",
    /* Landlock: sandbox-init applies the task's ruleset after bwrap installed these
     * filters. A process can only ever restrict itself further with them (and needs
     * no_new_privs, which bwrap set), so the task may use them too. */
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    NULL,
};

/* Dangerous syscalls: denied by the default action (EPERM). Listed to
 * document intent; mcpg_seccomp_build() fails if any of them is allowed. */
static const char *const DENIED[] = {
    /* debugging / cross-process memory access */
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "process_madvise", "process_mrelease", "get_robust_list",
    /* large kernel attack surface */
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key", "fanotify_init", "fanotify_mark",
    "memfd_secret", "name_to_handle_at", "open_by_handle_at", "lookup_dcookie",
    "set_mempolicy", "mbind", "migrate_pages", "move_pages", "remap_file_pages",
    "modify_ldt", "iopl", "ioperm", "vm86", "vm86old", "uselib", "sysfs", "ustat",
    "_sysctl", "quotactl", "quotactl_fd", "nfsservctl",
    /* mounts and namespaces */
    "mount", "umount", "umount2", "pivot_root", "chroot", "setns", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    /* host-wide state */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "syslog", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "vhangup",
    NULL,
};

/* Every namespace flag: clone/unshare may not create namespaces. With all
 * capabilities dropped only CLONE_NEWUSER could succeed, and bwrap's
 * --disable-userns already blocks that; this rule is the second guarantee. */
static const scmp_datum_t NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                            CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                            CLONE_NEWNET | CLONE_NEWTIME;

/* Syscalls that libc or runtimes probe and fall back from on ENOSYS. */
static const char *const FALLBACK_ENOSYS[] = {
    "clone3", /* flags live in a struct seccomp cannot read; glibc falls back to clone */
    NULL,
};

static int resolve(const char *name) { return seccomp_syscall_resolve_name(name); }

#define CHECK(expr)                                                                      \
  do {                                                                                   \
    int rc_ = (expr);                                                                    \
    if (rc_ < 0) {                                                                       \
      fprintf(stderr, "seccomp: %s failed: %s\n", #expr, strerror(-rc_));                \
      goto fail;                                                                         \
    }                                                                                    \
  } while (0)

static scmp_filter_ctx build_main(void) {
  for (const char *const *d = DENIED; *d != NULL; d++) {
    for (const char *const *a = ALLOWED; *a != NULL; a++) {
      if (strcmp(*d, *a) == 0) {
        fprintf(stderr, "seccomp: %s is both allowed and denied\n", *d);
        return NULL;
      }
    }
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == NULL) return NULL;
  /* Foreign ABI (i386 int 0x80, x32 on x86_64): kill the whole process. */
  CHECK(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS));
  /* bwrap has already set no_new_privs; keep libseccomp from touching it. */
  CHECK(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0));
  /* Binary-tree dispatch instead of a linear list of ~300 comparisons. */
  CHECK(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2));

  for (const char *const *p = ALLOWED; *p != NULL; p++) {
    int nr = resolve(*p);
    if (nr < 0) continue; /* not on this architecture */
    CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0));
  }
  for (const char *const *p = FALLBACK_ENOSYS; *p != NULL; p++) {
    int nr = resolve(*p);
    if (nr < 0) continue;
    CHECK(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0));
  }

  /* clone / unshare: allowed only without namespace flags (arg0 on both
   * x86_64 and aarch64). Masked 64-bit comparison: no bits can hide. */
  CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, NAMESPACE_FLAGS, 0)));
  CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(unshare), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, NAMESPACE_FLAGS, 0)));

  /* socket: AF_UNIX, AF_INET, AF_INET6 only (no AF_NETLINK, AF_PACKET,
   * AF_VSOCK, AF_ALG, AF_BLUETOOTH ...). Exact 64-bit equality: stray high
   * bits make the comparison fail, i.e. deny. socketpair: AF_UNIX only. */
  static const scmp_datum_t families[] = {AF_UNIX, AF_INET, AF_INET6};
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                           SCMP_A0(SCMP_CMP_EQ, families[i])));
  }
  CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                         SCMP_A0(SCMP_CMP_EQ, AF_UNIX)));

  /* ioctl: allowed here; TIOCSTI/TIOCLINUX are removed by the "args" filter. */
  CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 0));

  /* personality: only the query (0xffffffff) and PER_LINUX / PER_LINUX32
   * (no ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC ...). */
  static const scmp_datum_t personas[] = {0x0, 0x8, 0xffffffff};
  for (size_t i = 0; i < sizeof personas / sizeof personas[0]; i++) {
    CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                           SCMP_A0(SCMP_CMP_EQ, personas[i])));
  }

  /* mknod/mknodat: FIFOs, sockets and regular files only (mkfifo, some
   * installers); device nodes fall to the default (EPERM) and would need
   * CAP_MKNOD anyway. */
  static const scmp_datum_t kinds[] = {S_IFIFO, S_IFREG, S_IFSOCK};
  int mknod_nr = resolve("mknod");
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (mknod_nr >= 0) {
      CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, mknod_nr, 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, kinds[i])));
    }
    CHECK(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mknodat), 1,
                           SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, kinds[i])));
  }
  return ctx;
fail:
  seccomp_release(ctx);
  return NULL;
}

static scmp_filter_ctx build_args(void) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL) return NULL;
  CHECK(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS));
  CHECK(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0));
  /* TIOCSTI pushes bytes into a terminal's input queue (injecting commands
   * into the runner's shell); TIOCLINUX can do the same on a VT. The kernel
   * reads the command as unsigned int: compare the low 32 bits only. */
  static const scmp_datum_t ioctls[] = {TIOCSTI, TIOCLINUX};
  for (size_t i = 0; i < sizeof ioctls / sizeof ioctls[0]; i++) {
    CHECK(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                           SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, ioctls[i])));
  }
  return ctx;
fail:
  seccomp_release(ctx);
  return NULL;
}

scmp_filter_ctx mcpg_seccomp_build(enum mcpg_filter which) {
  return which == MCPG_FILTER_MAIN ? build_main() : build_args();
}
