/*
 * launch.c — host-side supervisor of one sandboxed task.
 *
 *   mcpg-sandbox-helper launch STATUS_FD RUNNER_PID GO_FD -- BWRAP [BWRAP ARGS...]
 *   mcpg-sandbox-helper launch STATUS_FD RUNNER_PID GO_FD -- @ [-L ABI -P PATH [-N] [-l]
 *                              [-a NAME]... [-d NAME]... [-p PREFIX]...]
 *
 *   mcpg-sandbox-helper launch STATUS_FD RUNNER_PID GO_FD -- % [PREBUILD OPTIONS] -- BWRAP ARGS...
 *
 * The third form is a prepared sandbox (ADR 0028): once placed ('G'), the child executes
 * bwrap at once with GO_FD as fd TASK_FD, and sandbox-init (-G) waits inside the finished
 * sandbox — namespaces, mounts and seccomp in place — for the task's environment, cwd, limits
 * and command on it. sandbox-init writes 'W' on the start pipe when it waits (the status line
 * "waiting"), then 'S' as usual when the task starts.
 *
 * The second form is a prepared launcher (issue 13): started, and its child placed into a
 * fresh cgroup, before any task is known. The child reads 'G' and then the whole command
 * line — NUL-terminated strings, BWRAP first, up to EOF — from GO_FD, so the task's argv
 * (its workspace bind, environment and command) arrives only when a task takes it. One
 * prepared launcher runs exactly one task and is never reused.
 *
 * With the options after "@" (the Landlock policy the runner expects the next task to have,
 * as sandbox-init's options; -P the sandbox PATH, -N TCP ports will be limited), the waiting
 * child also builds that policy's program-directory rules into a Landlock ruleset before it
 * waits, and keeps it open as fd RULESET_FD for sandbox-init's -R (ADR 0024), with what the
 * rules depend on beside it (RULESET_FD + 1, sandbox-init compares). Those rules
 * name inodes, which bwrap binds unchanged; the runner passes -R only when the task's policy
 * is exactly that one. Nothing is built when the policy cannot be (sandbox-init then builds
 * it all, as without the options).
 *
 * The runner spawns this (as the unprivileged sandbox uid) instead of bwrap
 * itself, because Node cannot give what it does:
 *   - PR_SET_PDEATHSIG(SIGKILL): if the runner dies, the launcher dies, and
 *     bwrap (--die-with-parent) and the whole sandbox PID namespace follow;
 *   - PR_SET_CHILD_SUBREAPER: anything that escapes bwrap's process (bwrap's
 *     PID-1 reaper if bwrap is killed) is re-parented here and reaped, so the
 *     status line is written only once the whole tree is gone;
 *   - SIGTERM/SIGINT/SIGHUP = "kill the tree now": SIGKILL to bwrap and to
 *     every remaining child;
 *   - getrusage(RUSAGE_CHILDREN): CPU and peak RSS of the whole tree.
 *
 * GO_FD (or -1): the forked child reads one byte from it before it executes
 * bwrap. The launcher announces the child with a "pid N" status line; the
 * runner places that pid into the task's cgroup(s) and then writes 'G', so
 * bwrap and every process of the task are created inside them and charged
 * from their first page, while the launcher itself stays outside (an OOM kill
 * or cgroup.kill of the task never takes the supervisor). Any other byte, or
 * EOF, means "do not start": the child exits 125 without running anything. With "@", a
 * command line that is empty, too long or not NUL-terminated is "do not start" too.
 *
 * A pipe is handed to bwrap as fd STARTED_FD (6); sandbox-init writes one byte
 * to it once bwrap's setup has succeeded. EOF without that byte means setup
 * (or bwrap itself) failed.
 *
 * Status lines written to STATUS_FD (the runner parses them):
 *   pid N          (the child that becomes bwrap; only with GO_FD >= 0)
 *   waiting        ("%" mode: the sandbox is set up and waits for its task)
 *   started
 *   exit CODE SIGNAL UTIME_US STIME_US MAXRSS_KB STARTED KILLED
 *   error MESSAGE
 */
#define _GNU_SOURCE
#include "launch.h"

#include "landlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/** fd number at which bwrap (and so sandbox-init) receives the start pipe. */
#define STARTED_FD 6
/** fd number of a prepared launcher's prebuilt Landlock ruleset (sandbox-init -R). High, so
 * that it never meets a descriptor the launcher or its child already uses. */
#define RULESET_FD 20
/** fd number at which a prepared sandbox's sandbox-init reads its task (-G), in "%" mode. */
#define TASK_FD 9

/**
 * In a prepared launcher's child, while it waits (ADR 0024): the expected policy's
 * program-directory rules on RULESET_FD, and on RULESET_FD + 1 a sealed memfd with what they
 * depend on (mcpg_landlock_fingerprint), which sandbox-init compares with its own view before
 * it uses them. Its messages go nowhere: fd 2 is the future task's stderr. Nothing on either
 * descriptor when anything fails (the task's rules are then built in the sandbox).
 */
static void prebuild(struct mcpg_landlock_policy *p, int abi, int net) {
  int saved = dup(STDERR_FILENO);
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (saved < 0 || null < 0 || dup2(null, STDERR_FILENO) < 0) _exit(125);
  close(null);
  static char fp[64 * 1024];
  int rs = -1;
  int mfd = -1;
  int len = -1;
  if (mcpg_landlock_prepare(p) == 0 &&
      (len = mcpg_landlock_fingerprint(p, abi, net, fp, sizeof fp)) > 0) {
    rs = mcpg_landlock_prebuild(p, abi, net);
  }
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
  /* Not executable (hosts with vm.memfd_noexec = 2 refuse anything else; older kernels refuse
   * the flag). */
  if (rs >= 0) {
    mfd = memfd_create("mcpg-landlock-fingerprint", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (mfd < 0 && errno == EINVAL) {
      mfd = memfd_create("mcpg-landlock-fingerprint", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    }
  }
  /* (each below RULESET_FD, so no dup2 below closes the other) */
  int ok = rs >= 0 && mfd >= 0 && rs < RULESET_FD && mfd < RULESET_FD &&
           write(mfd, fp, (size_t)len) == len &&
           fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0 &&
           dup2(rs, RULESET_FD) == RULESET_FD && dup2(mfd, RULESET_FD + 1) == RULESET_FD + 1 &&
           fcntl(RULESET_FD, F_SETFD, 0) == 0 && fcntl(RULESET_FD + 1, F_SETFD, 0) == 0;
  if (rs >= 0) close(rs);
  if (mfd >= 0) close(mfd);
  if (!ok) {
    close(RULESET_FD);
    close(RULESET_FD + 1);
  }
  if (dup2(saved, STDERR_FILENO) < 0) _exit(125);
  close(saved);
}

/** Parses the prebuild options after "@" into p; returns 0, or -1 when malformed. */
static int parse_prebuild(char **opt, struct mcpg_landlock_policy *p, int *abi, int *net) {
  for (int i = 0; opt[i] != NULL; i++) {
    const char *o = opt[i];
    if (strcmp(o, "-l") == 0) {
      p->list_mode = 1;
      continue;
    }
    if (strcmp(o, "-N") == 0) {
      *net = 1;
      continue;
    }
    const char *v = opt[i + 1];
    if (v == NULL || o[0] != '-' || o[1] == '\0' || o[2] != '\0') return -1;
    i++;
    switch (o[1]) {
      case 'L': {
        char *end = NULL;
        long n = strtol(v, &end, 10);
        if (end == v || *end != '\0' || n < 1 || n > 64) return -1;
        *abi = (int)n;
        break;
      }
      case 'P':
        p->path_env = v;
        break;
      case 'a':
        if (p->n_allowed >= MCPG_MAX_LIST) return -1;
        p->allowed[p->n_allowed++] = v;
        break;
      case 'd':
        if (p->n_denied >= MCPG_MAX_LIST * 2) return -1;
        p->denied[p->n_denied++] = v;
        break;
      case 'p':
        if (p->n_denied_prefixes >= MCPG_MAX_LIST) return -1;
        p->denied_prefixes[p->n_denied_prefixes++] = v;
        break;
      default:
        return -1;
    }
  }
  return *abi > 0 && p->path_env != NULL ? 0 : -1;
}

static volatile sig_atomic_t kill_requested = 0;
static volatile pid_t bwrap_pid = 0;

/** Largest command line a prepared launcher accepts on GO_FD (the runner's are far smaller). */
#define MAX_GO_ARGV (4 << 20)

/** Reads NUL-terminated strings from fd up to EOF into a NULL-terminated argv; NULL when the
 * input is empty, too long, not NUL-terminated, or unreadable. */
static char **read_argv(int fd) {
  size_t cap = 64 * 1024;
  size_t len = 0;
  char *buf = malloc(cap);
  if (buf == NULL) return NULL;
  for (;;) {
    if (len == cap) {
      if (cap >= MAX_GO_ARGV) return NULL;
      cap *= 2;
      char *bigger = realloc(buf, cap);
      if (bigger == NULL) return NULL;
      buf = bigger;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return NULL;
    if (n == 0) break;
    len += (size_t)n;
  }
  if (len == 0 || buf[len - 1] != '\0') return NULL;
  size_t count = 0;
  for (size_t i = 0; i < len; i++) count += buf[i] == '\0';
  char **out = calloc(count + 1, sizeof *out);
  if (out == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < len; i += strlen(buf + i) + 1) out[k++] = buf + i;
  out[k] = NULL;
  return out;
}

/** The launcher's signal mask inside its waits: the kill signals and SIGCHLD unblocked. */
static sigset_t wait_mask;

static void on_child_signal(int sig) { (void)sig; }

/** Waits until fd is readable (data or EOF); 0 when a kill was requested first. */
static int wait_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (!kill_requested) {
    int r = ppoll(&p, 1, NULL, &wait_mask);
    if (r > 0) return 1;
    /* (ppoll cannot wait: give up waiting rather than block in a read no kill can end) */
    if (r < 0 && errno != EINTR) return 0;
  }
  return 0;
}

static void on_kill_signal(int sig) {
  (void)sig;
  kill_requested = 1;
  pid_t pid = bwrap_pid;
  if (pid > 0) kill(pid, SIGKILL);
}

/* SIGKILL every direct child (bwrap, or bwrap's orphaned PID-1 after bwrap
 * died). Killing a PID namespace's init kills every process inside it. */
static void kill_children(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
  FILE *f = fopen(path, "re");
  if (f == NULL) return;
  int pid;
  while (fscanf(f, "%d", &pid) == 1) {
    if (pid > 0) kill(pid, SIGKILL);
  }
  fclose(f);
}

int mcpg_launch(int argc, char **argv) {
  if (argc < 6 || strcmp(argv[4], "--") != 0) {
    fprintf(stderr, "usage: launch STATUS_FD RUNNER_PID GO_FD -- BWRAP [ARGS...]\n");
    return 125;
  }
  int status_fd = atoi(argv[1]);
  pid_t runner_pid = (pid_t)atoi(argv[2]);
  int go_fd = atoi(argv[3]);
  char **child_argv = &argv[5];
  /* "@": a prepared launcher; the command line arrives on GO_FD after 'G'. */
  int argv_on_go = strcmp(child_argv[0], "@") == 0;
  /* "%": a prepared sandbox; its bwrap command line follows the prebuild options' "--". */
  int task_on_go = strcmp(child_argv[0], "%") == 0;
  if ((argv_on_go || task_on_go) && go_fd < 0) return 125;
  char **prebuild_opts = &child_argv[1];
  if (task_on_go) {
    /* The options' "--" (an option's value, a denied name among them, may be "--" too). */
    int k = 1;
    while (child_argv[k] != NULL && strcmp(child_argv[k], "--") != 0) {
      int flag = strcmp(child_argv[k], "-l") == 0 || strcmp(child_argv[k], "-N") == 0;
      k += flag || child_argv[k + 1] == NULL ? 1 : 2;
    }
    if (child_argv[k] == NULL || child_argv[k + 1] == NULL || child_argv[k + 1][0] != '/') {
      dprintf(status_fd, "error malformed prepared sandbox command line\n");
      return 125;
    }
    child_argv[k] = NULL; /* ends the prebuild options */
    child_argv = &child_argv[k + 1];
  }
  /* A prepared launcher's expected Landlock policy (checked here, built by the child). */
  struct mcpg_landlock_policy *expected = NULL;
  int expected_abi = 0;
  int expected_net = 0;
  if ((argv_on_go || task_on_go) && prebuild_opts[0] != NULL) {
    expected = calloc(1, sizeof *expected);
    if (expected == NULL || parse_prebuild(prebuild_opts, expected, &expected_abi, &expected_net) != 0) {
      dprintf(status_fd, "error malformed Landlock prebuild options\n");
      return 125;
    }
  }
  if (go_fd >= 0 && fcntl(go_fd, F_SETFD, FD_CLOEXEC) != 0) return 125;

  /* Die with the runner (checked after arming, to close the race). */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != runner_pid) return 125;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    dprintf(status_fd, "error cannot become a child subreaper: %s\n", strerror(errno));
    return 125;
  }
  if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0) return 125;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_kill_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  /* SIGCHLD must interrupt sigsuspend (its default action, ignore, would not). */
  sa.sa_handler = on_child_signal;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  /* The kill signals and SIGCHLD are blocked except inside the waits (ppoll, sigsuspend),
   * which unblock them atomically: a kill request can never arrive between the check of
   * kill_requested and a wait that would then block until the task ends by itself. */
  sigset_t orig_mask;
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGHUP);
  sigaddset(&blocked, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &blocked, &orig_mask) != 0) return 125;
  wait_mask = orig_mask;
  sigdelset(&wait_mask, SIGTERM);
  sigdelset(&wait_mask, SIGINT);
  sigdelset(&wait_mask, SIGHUP);
  sigdelset(&wait_mask, SIGCHLD);

  int started_pipe[2];
  int exec_err_pipe[2];
  if (pipe2(started_pipe, O_CLOEXEC) != 0 || pipe2(exec_err_pipe, O_CLOEXEC) != 0) {
    dprintf(status_fd, "error pipe: %s\n", strerror(errno));
    return 125;
  }
  /* Above every fixed descriptor number the child sets up (STARTED_FD, TASK_FD, RULESET_FD
   * and RULESET_FD + 1), so no dup2 there replaces one of these. */
  int *ends[4] = {&started_pipe[0], &started_pipe[1], &exec_err_pipe[0], &exec_err_pipe[1]};
  for (int e = 0; e < 4; e++) {
    int moved = fcntl(*ends[e], F_DUPFD_CLOEXEC, RULESET_FD + 2);
    if (moved < 0) {
      dprintf(status_fd, "error fcntl: %s\n", strerror(errno));
      return 125;
    }
    close(*ends[e]);
    *ends[e] = moved;
  }

  pid_t launcher = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    dprintf(status_fd, "error fork: %s\n", strerror(errno));
    return 125;
  }
  if (pid == 0) {
    /* bwrap: gets fds 0-2, the two seccomp programs at 3 and 4, and the
     * start pipe at STARTED_FD (dup2 clears O_CLOEXEC). It dies with the launcher
     * (fork clears PDEATHSIG): a prepared child waiting on GO_FD, or one about to
     * execute bwrap, never outlives its supervisor. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != launcher) _exit(125);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    /* (the signal mask survives exec: bwrap gets the one the launcher was started with) */
    if (sigprocmask(SIG_SETMASK, &orig_mask, NULL) != 0) _exit(125);
    if (expected != NULL) prebuild(expected, expected_abi, expected_net);
    if (go_fd >= 0) {
      /* Wait until the runner has placed this process into the task's cgroup(s). */
      char go = 0;
      ssize_t g;
      do {
        g = read(go_fd, &go, 1);
      } while (g < 0 && errno == EINTR);
      if (g != 1 || go != 'G') _exit(125);
      if (argv_on_go) {
        child_argv = read_argv(go_fd);
        if (child_argv == NULL || child_argv[0][0] != '/') _exit(125);
      }
      /* (TASK_FD is none of the fds the launcher was given, 0-8, nor one of its pipes) */
      if (task_on_go && (dup2(go_fd, TASK_FD) != TASK_FD || fcntl(TASK_FD, F_SETFD, 0) != 0)) {
        _exit(125);
      }
      if (go_fd != TASK_FD) close(go_fd);
    }
    if (dup2(started_pipe[1], STARTED_FD) < 0) _exit(125);
    execv(child_argv[0], child_argv);
    int err = errno;
    if (write(exec_err_pipe[1], &err, sizeof err) < 0) _exit(125);
    _exit(127);
  }
  bwrap_pid = pid;
  if (go_fd >= 0) {
    close(go_fd);
    dprintf(status_fd, "pid %d\n", (int)pid);
  }
  if (kill_requested) kill(pid, SIGKILL);
  close(started_pipe[1]);
  close(exec_err_pipe[1]);
  /* The seccomp programs are bwrap's now. */
  close(3);
  close(4);

  /* Until the child executes bwrap (a prepared one: until a task is sent) or a kill is
   * requested, whichever comes first. */
  int exec_err = 0;
  ssize_t n = -1;
  if (wait_readable(exec_err_pipe[0])) {
    do {
      n = read(exec_err_pipe[0], &exec_err, sizeof exec_err);
    } while (n < 0 && errno == EINTR);
  }
  close(exec_err_pipe[0]);
  if (n == (ssize_t)sizeof exec_err) {
    dprintf(status_fd, "error cannot execute %s: %s\n", argv_on_go ? "the sandbox" : child_argv[0],
            strerror(exec_err));
    waitpid(pid, NULL, 0);
    return 0;
  }

  /* A kill request stops this wait too: bwrap killed in the middle of creating its sandbox's
   * first process can leave that process orphaned (re-parented here, before its
   * --die-with-parent is armed) holding the pipe open; the reaping below kills it. */
  int started = 0;
  char byte;
  n = -1;
  for (int waited = 0; wait_readable(started_pipe[0]);) {
    do {
      n = read(started_pipe[0], &byte, 1);
    } while (n < 0 && errno == EINTR);
    /* A prepared sandbox is ready and waits for its task: say so, then wait for the start. */
    if (n != 1 || byte != 'W' || !task_on_go || waited) break;
    waited = 1;
    n = -1;
    dprintf(status_fd, "waiting\n");
  }
  if (n < 0) {
    /* Killed: bwrap may have started the task already; say so if it did (without waiting). */
    int fl = fcntl(started_pipe[0], F_GETFL);
    if (fl >= 0 && fcntl(started_pipe[0], F_SETFL, fl | O_NONBLOCK) == 0) {
      n = read(started_pipe[0], &byte, 1);
    }
  }
  close(started_pipe[0]);
  if (n == 1 && byte == 'S') {
    started = 1;
    dprintf(status_fd, "started\n");
  }

  /* Reap everything: bwrap, and anything re-parented to us. */
  int bwrap_status = 0;
  int have_status = 0;
  int killed_tree = 0;
  for (;;) {
    if (kill_requested && !killed_tree) {
      killed_tree = 1;
      if (!have_status) kill(pid, SIGKILL);
      kill_children();
    }
    int st;
    pid_t w = waitpid(-1, &st, WNOHANG);
    if (w < 0) {
      if (errno == EINTR) continue;
      break; /* ECHILD: the tree is gone */
    }
    if (w == 0) {
      /* Children left, none changed: sleep until one does or a kill is requested. */
      sigsuspend(&wait_mask);
      continue;
    }
    if (w == pid) {
      bwrap_status = st;
      have_status = 1;
      bwrap_pid = 0; /* reaped: its pid may be reused */
    }
    if (kill_requested) kill_children();
  }

  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  getrusage(RUSAGE_CHILDREN, &ru);
  int code = -1;
  int sig = 0;
  if (have_status && WIFEXITED(bwrap_status)) code = WEXITSTATUS(bwrap_status);
  if (have_status && WIFSIGNALED(bwrap_status)) sig = WTERMSIG(bwrap_status);
  long long utime = (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec;
  long long stime = (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
  dprintf(status_fd, "exit %d %d %lld %lld %ld %d %d\n", code, sig, utime, stime, ru.ru_maxrss,
          started, kill_requested ? 1 : 0);
  return 0;
}
