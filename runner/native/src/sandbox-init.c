/*
 * sandbox-init.c — first program bwrap runs INSIDE the sandbox.
 *
 *   mcpg-sandbox-init STARTED_FD AS NPROC FSIZE NOFILE CPU [OPTIONS] -- COMMAND [ARGS...]
 *   mcpg-sandbox-init -G TASK_FD STARTED_FD
 *
 * The second form is a prepared sandbox (ADR 0028): bwrap has set it up before any task was
 * known, with an empty slot at /workspace. It writes 'W' to STARTED_FD, then reads its task
 * from TASK_FD up to EOF — NUL-terminated fields: "T", the cwd, the number of environment
 * entries, those "NAME=value" entries, then exactly the first form's arguments — by which
 * time the runner has mounted the task's workspace on the slot (it appears at /workspace) and
 * written the task's cgroup limits. It replaces its (empty) environment with the task's,
 * enters the cwd, and goes on as the first form. Anything else on TASK_FD ("X": the sandbox
 * is discarded) ends it with status 125 before anything runs.
 *
 * Options (the Landlock layer, from the decision's obligations; see landlock.c):
 *   -L ABI     apply Landlock with at most this ABI (the runner's probe); without -L no
 *              Landlock ruleset is applied
 *   -r FD      report refused executions on FD ("refused KIND NAME PATH" lines) through an
 *              exec supervisor (below)
 *   -l         list mode: only the -a programs may be executed
 *   -a NAME    an allowed program (list mode), resolved on PATH with its interpreters
 *   -d NAME    a denied program name; -p PREFIX a denied name prefix
 *   -w DIR     a writable directory, no execution; -W DIR writable with execution
 *   -n PORT    connect(2) only to these TCP ports (repeatable)
 *   -R FD      a ruleset with the program directories' rules already in it, built by the
 *              prepared launcher for the same -L, -d/-p, PATH and ports (ADR 0024), and on
 *              FD + 1 what they were built from; the rest is added here. Ignored (all built
 *              here) unless FD is a Landlock ruleset, the policy is not list mode, and the
 *              program directories and denied files are unchanged since.
 *
 * Runs after bwrap's setup, already under the seccomp filters and with no
 * capabilities. It:
 *   1. sets the resource limits (soft = hard, so they cannot be raised);
 *      RLIMIT_NPROC is set here, inside the sandbox's own user namespace, so
 *      the kernel counts it per sandbox rather than per host uid (shared by
 *      every concurrent task of the sandbox uid);
 *   2. with -r: forks. The parent stays as the exec supervisor: the child installs a
 *      seccomp filter that sends every execve/execveat to it (SCMP_ACT_NOTIFY), passes it
 *      the listener, and applies Landlock; the supervisor reads each exec's path from the
 *      caller's memory, resolves it, and when the Landlock policy refuses that file it
 *      writes one report line saying which path and why, then lets the kernel decide
 *      (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The kernel (Landlock) enforces; the supervisor
 *      only explains. It exits with the child's status (re-raising its signal), so bwrap's
 *      PID 1 reports the task as before. The child's Landlock domain is scoped (ABI 6): it
 *      cannot signal the supervisor nor read its memory.
 *      Without -r the process applies Landlock (with -L) itself;
 *   3. writes one byte to STARTED_FD (tells the host launcher that bwrap's
 *      setup succeeded) and closes it;
 *   4. closes every descriptor above 2, so nothing the runner or bwrap held
 *      leaks into the task;
 *   5. execvp()s the command, looked up on the sandbox's PATH.
 *
 * Linked statically where possible: it does not depend on the sandbox's /usr/lib.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "landlock.h"

static int parse_u64(const char *s, unsigned long long *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return -1;
  *out = v;
  return 0;
}

static int limit(int resource, unsigned long long soft, unsigned long long hard) {
  struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
  return setrlimit(resource, &rl);
}

static void close_from(int first) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0) return;
#endif
  for (int fd = first; fd < 65536; fd++) close(fd);
}

/** Closes every descriptor from `first` up except the three kept (-1: none): one
 * close_range(2) per gap between kept descriptors instead of a close(2) per number. */
static void close_from_except(int first, int keep1, int keep2, int keep3) {
  int keep[3] = {keep1, keep2, keep3};
  /* sort the three */
  for (int i = 0; i < 3; i++) {
    for (int j = i + 1; j < 3; j++) {
      if (keep[j] < keep[i]) {
        int t = keep[i];
        keep[i] = keep[j];
        keep[j] = t;
      }
    }
  }
  int from = first;
  for (int i = 0; i < 3; i++) {
    if (keep[i] < from) continue;
    for (int fd = from; fd < keep[i]; fd++) {
#ifdef SYS_close_range
      if (syscall(SYS_close_range, (unsigned)fd, (unsigned)keep[i] - 1, 0) == 0) break;
#endif
      close(fd);
    }
    from = keep[i] + 1;
  }
  close_from(from);
}

/* ---- exec supervisor ---------------------------------------------------------------- */

static struct mcpg_landlock_policy policy;
static int report_fd = -1;
static unsigned reports = 0;

/** Reads a NUL-terminated string at `addr` in process `pid` (page by page). */
static int read_remote_string(pid_t pid, unsigned long long addr, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got + 1 < size) {
    size_t page_left = 4096 - ((addr + got) & 4095);
    size_t want = size - 1 - got < page_left ? size - 1 - got : page_left;
    ssize_t n = pread(fd, out + got, want, (off_t)(addr + got));
    if (n <= 0) break;
    void *nul = memchr(out + got, '\0', (size_t)n);
    got += (size_t)n;
    if (nul != NULL) {
      close(fd);
      return 0;
    }
  }
  close(fd);
  return -1;
}

static void report(const char *kind, const char *name, const char *path) {
  if (report_fd < 0 || reports >= 64) return;
  reports++;
  char line[PATH_MAX + 256];
  int n = snprintf(line, sizeof line, "refused %s %s %s\n", kind, name[0] ? name : "-", path);
  if (n <= 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  for (int i = 0; i < n - 1; i++) {
    if (line[i] == '\n') line[i] = '?';
  }
  ssize_t w = write(report_fd, line, (size_t)n);
  (void)w;
}

/**
 * Classifies one exec (the file and, for scripts, its interpreter) and reports a refusal.
 * Returns 1 when the supervisor itself must refuse it: an anonymous (memfd) file, which
 * Landlock does not see (the kernel refuses those only with vm.memfd_noexec >= 1).
 */
static int explain(const char *real) {
  const char *name = "";
  const char *kind = mcpg_landlock_classify(&policy, real, &name);
  if (kind != NULL) {
    report(kind, name, real);
    return strcmp(kind, "memfd") == 0;
  }
  /* An allowed script whose interpreter is refused. */
  int fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 0;
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  if (n < 3 || buf[0] != '#' || buf[1] != '!') return 0;
  buf[n] = '\0';
  char *p = buf + 2;
  while (*p == ' ' || *p == '\t') p++;
  p[strcspn(p, " \t\n")] = '\0';
  char interp[PATH_MAX];
  if (realpath(p, interp) == NULL) return 0;
  kind = mcpg_landlock_classify(&policy, interp, &name);
  if (kind != NULL) report(kind, name, interp);
  return 0;
}

/** Rewrites /proc/self and /proc/thread-self (and /dev/fd) to the caller's /proc/PID. */
static void as_caller(pid_t pid, char *path, size_t size) {
  static const char *const selfs[] = {"/proc/self/", "/proc/thread-self/", "/dev/fd/"};
  for (size_t i = 0; i < 3; i++) {
    size_t l = strlen(selfs[i]);
    if (strncmp(path, selfs[i], l) == 0) {
      char rest[PATH_MAX];
      snprintf(rest, sizeof rest, "%s", path + l);
      snprintf(path, size, i == 2 ? "/proc/%d/fd/%s" : "/proc/%d/%s", (int)pid, rest);
      return;
    }
  }
}

/**
 * Resolves `path` as process `pid` would: symlinks are followed one component at a time,
 * and links into /proc/self are read as the caller's. A magic link to an anonymous file
 * ends the walk with its text ("/memfd:x (deleted)"). Returns 0 with the result in out.
 */
static int resolve_as(pid_t pid, const char *path, char *out) {
  char cur[PATH_MAX];
  size_t plen = strlen(path);
  if (plen >= sizeof cur) return -1;
  memcpy(cur, path, plen + 1);
  for (int hops = 0; hops < 40; hops++) {
    as_caller(pid, cur, sizeof cur);
    if (cur[0] != '/') return -1;
    /* Find the first component that is a symlink. */
    char prefix[PATH_MAX] = "";
    const char *p = cur;
    int replaced = 0;
    while (*p != '\0') {
      while (*p == '/') p++;
      if (*p == '\0') break;
      const char *end = strchr(p, '/');
      size_t len = end == NULL ? strlen(p) : (size_t)(end - p);
      size_t pl = strlen(prefix);
      if (pl + 1 + len >= sizeof prefix) return -1;
      prefix[pl] = '/';
      memcpy(prefix + pl + 1, p, len);
      prefix[pl + 1 + len] = '\0';
      p += len;
      struct stat st;
      if (lstat(prefix, &st) != 0) return -1;
      if (!S_ISLNK(st.st_mode)) continue;
      char target[PATH_MAX];
      ssize_t n = readlink(prefix, target, sizeof target - 1);
      if (n <= 0) return -1;
      target[n] = '\0';
      char next[PATH_MAX];
      if (target[0] == '/') {
        if (snprintf(next, sizeof next, "%s%s", target, p) >= (int)sizeof next) return -1;
      } else {
        char *slash = strrchr(prefix, '/');
        *slash = '\0';
        if (snprintf(next, sizeof next, "%s/%s%s", prefix, target, p) >= (int)sizeof next)
          return -1;
      }
      if (strncmp(next, "/memfd:", 7) == 0 || strchr(next, '/') == NULL ||
          strncmp(next, "anon_inode:", 11) == 0) {
        snprintf(out, PATH_MAX, "%s", next[0] == '/' ? next : target);
        return 0;
      }
      snprintf(cur, sizeof cur, "%s", next);
      replaced = 1;
      break;
    }
    if (!replaced) return realpath(prefix[0] ? prefix : "/", out) != NULL ? 0 : -1;
  }
  return -1;
}

static void handle_notification(int listener, struct seccomp_notif *req,
                                struct seccomp_notif_resp *resp) {
  memset(req, 0, sizeof *req);
  if (seccomp_notify_receive(listener, req) != 0) return; /* the caller died */
  char rel[PATH_MAX];
  int ok = -1;
  int dirfd = AT_FDCWD;
  unsigned long long addr = req->data.args[0];
  if (req->data.nr == SCMP_SYS(execveat)) {
    dirfd = (int)req->data.args[0];
    addr = req->data.args[1];
  }
  if (addr != 0) ok = read_remote_string((pid_t)req->pid, addr, rel, sizeof rel);
  /* Resolve as the caller would: relative to its cwd or dirfd, through its /proc view. */
  char full[PATH_MAX + 64];
  int have = 0;
  if (ok == 0 && seccomp_notify_id_valid(listener, req->id) == 0) {
    if (rel[0] == '/') {
      have = snprintf(full, sizeof full, "%s", rel) < (int)sizeof full;
    } else if (dirfd == AT_FDCWD) {
      have = snprintf(full, sizeof full, "/proc/%d/cwd/%s", (int)req->pid, rel) <
             (int)sizeof full;
    } else if (rel[0] == '\0') {
      have = snprintf(full, sizeof full, "/proc/%d/fd/%d", (int)req->pid, dirfd) <
             (int)sizeof full;
    } else {
      have = snprintf(full, sizeof full, "/proc/%d/fd/%d/%s", (int)req->pid, dirfd, rel) <
             (int)sizeof full;
    }
  }
  char real[PATH_MAX];
  int refuse = 0;
  if (have && resolve_as((pid_t)req->pid, full, real) == 0) refuse = explain(real);
  memset(resp, 0, sizeof *resp);
  resp->id = req->id;
  if (refuse) {
    resp->error = -EACCES;
  } else {
    /* Landlock decides; a path swapped after this check meets the same rules. */
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  }
  seccomp_notify_respond(listener, resp); /* ENOENT: the caller died meanwhile */
}

static int send_fd(int sock, int fd) {
  char data = 'L';
  struct iovec iov = {.iov_base = &data, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock) {
  char data;
  struct iovec iov = {.iov_base = &data, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c == NULL || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

/** The child's side: the exec-notifying filter, its listener to the supervisor. */
static int install_exec_notifier(int sock) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL) return -1;
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(execve), 0);
  if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(execveat), 0);
  if (rc == 0) rc = seccomp_load(ctx);
  int listener = rc == 0 ? seccomp_notify_fd(ctx) : -1;
  seccomp_release(ctx);
  if (listener < 0) {
    fprintf(stderr, "sandbox: cannot install the exec supervisor: %s\n", strerror(-rc));
    return -1;
  }
  int sent = send_fd(sock, listener);
  close(listener);
  return sent;
}

/** The supervisor: answers exec notifications until the child exits; exits like it. */
static int supervise(pid_t child, int listener, int sigfd) {
  struct seccomp_notif *req = NULL;
  struct seccomp_notif_resp *resp = NULL;
  if (seccomp_notify_alloc(&req, &resp) != 0) {
    kill(child, SIGKILL);
    return 125;
  }
  for (;;) {
    struct pollfd fds[2] = {{.fd = sigfd, .events = POLLIN}, {.fd = listener, .events = POLLIN}};
    int n = poll(fds, listener >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (listener >= 0 && (fds[1].revents & POLLIN)) handle_notification(listener, req, resp);
    if (listener >= 0 && (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL))) {
      /* Every process of the task that holds the filter is gone. */
      close(listener);
      listener = -1;
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
      }
      int st;
      pid_t w = waitpid(child, &st, WNOHANG);
      if (w == child) {
        if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
        if (WIFSIGNALED(st)) {
          int sig = WTERMSIG(st);
          signal(sig, SIG_DFL);
          sigset_t all;
          sigfillset(&all);
          sigprocmask(SIG_UNBLOCK, &all, NULL);
          raise(sig);
          _exit(128 + sig);
        }
      }
    }
  }
  kill(child, SIGKILL);
  return 125;
}

/** Whether fd is a Landlock ruleset (an anonymous inode of that name). */
static int is_ruleset(int fd) {
  char link[64];
  char target[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = '\0';
  return strcmp(target, "anon_inode:[landlock-ruleset]") == 0;
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s STARTED_FD AS NPROC FSIZE NOFILE CPU [-L ABI] [-r FD] [-R FD] [-l] [-a NAME]... "
          "[-d NAME]... [-p PREFIX]... [-w DIR]... [-W DIR]... [-n PORT]... -- COMMAND "
          "[ARGS...]\n",
          argv0);
}

/** Largest task a prepared sandbox reads (the runner's are far smaller). */
#define MAX_TASK (4 << 20)

static int run(int argc, char **argv);

/** The -G form: waits for the task on task_fd, then runs it as the first form would. */
static int prepared(const char *argv0, int task_fd, int started_fd) {
  char waiting = 'W';
  if (write(started_fd, &waiting, 1) != 1) return 125;
  size_t cap = 64 * 1024;
  size_t len = 0;
  char *buf = malloc(cap);
  if (buf == NULL) return 125;
  for (;;) {
    if (len == cap) {
      char *bigger = cap >= MAX_TASK ? NULL : realloc(buf, cap * 2);
      if (bigger == NULL) {
        fprintf(stderr, "sandbox-init: the task is larger than %d bytes\n", MAX_TASK);
        return 125;
      }
      cap *= 2;
      buf = bigger;
    }
    ssize_t n = read(task_fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "sandbox-init: cannot read the task: %s\n", strerror(errno));
      return 125;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(task_fd);
  if (len < 2 || buf[len - 1] != '\0' || strcmp(buf, "T") != 0) return 125; /* discarded */
  size_t count = 0;
  for (size_t i = 0; i < len; i++) count += buf[i] == '\0';
  char **field = calloc(count + 2, sizeof *field);
  if (field == NULL) return 125;
  size_t k = 0;
  for (size_t i = 0; i < len; i += strlen(buf + i) + 1) field[k++] = buf + i;
  unsigned long long n_env = 0;
  if (k < 3 || parse_u64(field[2], &n_env) != 0 || n_env > k - 3) {
    fprintf(stderr, "sandbox-init: malformed task\n");
    return 125;
  }
  if (clearenv() != 0) return 125;
  for (size_t e = 0; e < n_env; e++) {
    if (strchr(field[3 + e], '=') == NULL || putenv(field[3 + e]) != 0) {
      fprintf(stderr, "sandbox-init: malformed environment entry\n");
      return 125;
    }
  }
  /* The workspace is mounted by now: the cwd is looked up in it, as bwrap's --chdir would. */
  if (chdir(field[1]) != 0) {
    fprintf(stderr, "sandbox: cannot enter the working directory %s: %s\n", field[1], strerror(errno));
    return 125;
  }
  /* argv: argv0, then the first form's arguments. */
  size_t first = 3 + (size_t)n_env;
  field[first - 1] = (char *)argv0;
  return run((int)(k - first + 1), &field[first - 1]);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "-G") == 0) {
    unsigned long long task_fd, started_fd;
    if (parse_u64(argv[2], &task_fd) || parse_u64(argv[3], &started_fd) || task_fd < 3 ||
        task_fd > 1023 || started_fd < 3 || started_fd > 1023) {
      usage(argv[0]);
      return 125;
    }
    return prepared(argv[0], (int)task_fd, (int)started_fd);
  }
  return run(argc, argv);
}

static int run(int argc, char **argv) {
  if (argc < 9) {
    usage(argv[0]);
    return 125;
  }
  unsigned long long started_fd, as, nproc, fsize, nofile, cpu;
  if (parse_u64(argv[1], &started_fd) || parse_u64(argv[2], &as) ||
      parse_u64(argv[3], &nproc) || parse_u64(argv[4], &fsize) ||
      parse_u64(argv[5], &nofile) || parse_u64(argv[6], &cpu)) {
    fprintf(stderr, "sandbox-init: invalid numeric argument\n");
    return 125;
  }
  int abi = 0;
  int prebuilt = -1;
  int i = 7;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *opt = argv[i];
    if (strcmp(opt, "-l") == 0) {
      policy.list_mode = 1;
      continue;
    }
    if (i + 1 >= argc || opt[0] != '-' || opt[1] == '\0' || opt[2] != '\0') {
      usage(argv[0]);
      return 125;
    }
    const char *val = argv[++i];
    unsigned long long n = 0;
    switch (opt[1]) {
      case 'L':
        if (parse_u64(val, &n) || n > 64) return usage(argv[0]), 125;
        abi = (int)n;
        break;
      case 'r':
        if (parse_u64(val, &n) || n > 1023) return usage(argv[0]), 125;
        report_fd = (int)n;
        break;
      case 'R':
        if (parse_u64(val, &n) || n < 3 || n > 1023) return usage(argv[0]), 125;
        prebuilt = is_ruleset((int)n) ? (int)n : -1;
        break;
      case 'a':
        if (policy.n_allowed >= MCPG_MAX_LIST) return fprintf(stderr, "sandbox-init: too many -a\n"), 125;
        policy.allowed[policy.n_allowed++] = val;
        break;
      case 'd':
        if (policy.n_denied >= MCPG_MAX_LIST * 2) return fprintf(stderr, "sandbox-init: too many -d\n"), 125;
        policy.denied[policy.n_denied++] = val;
        break;
      case 'p':
        if (policy.n_denied_prefixes >= MCPG_MAX_LIST) return fprintf(stderr, "sandbox-init: too many -p\n"), 125;
        policy.denied_prefixes[policy.n_denied_prefixes++] = val;
        break;
      case 'w':
      case 'W':
        if (policy.n_write >= 8 || val[0] != '/') return usage(argv[0]), 125;
        policy.exec_dirs[policy.n_write] = opt[1] == 'W';
        policy.write_dirs[policy.n_write++] = val;
        break;
      case 'n':
        if (parse_u64(val, &n) || n == 0 || n > 65535 || policy.n_ports >= 8) return usage(argv[0]), 125;
        policy.ports[policy.n_ports++] = (unsigned short)n;
        break;
      default:
        usage(argv[0]);
        return 125;
    }
  }
  if (i + 1 >= argc) {
    usage(argv[0]);
    return 125;
  }
  char **command = &argv[i + 1];
  policy.path_env = getenv("PATH");

  /* CPU: SIGXCPU at the soft limit, SIGKILL one second later. */
  if (limit(RLIMIT_AS, as, as) || limit(RLIMIT_NPROC, nproc, nproc) ||
      limit(RLIMIT_FSIZE, fsize, fsize) || limit(RLIMIT_NOFILE, nofile, nofile) ||
      limit(RLIMIT_CPU, cpu, cpu + 1) || limit(RLIMIT_CORE, 0, 0)) {
    fprintf(stderr, "sandbox-init: setrlimit: %s\n", strerror(errno));
    return 125;
  }
  if (abi > 0 && mcpg_landlock_prepare(&policy) != 0) return 125;
  if (prebuilt >= 0) {
    /* Used only if what the rules were built from is what this sandbox sees now (FD + 1). */
    static char fp[64 * 1024];
    ssize_t len = pread(prebuilt + 1, fp, sizeof fp, 0);
    if (len <= 0 || !mcpg_landlock_prebuilt_usable(&policy, abi, fp, (size_t)len)) prebuilt = -1;
  }

  if (abi > 0 && report_fd >= 0) {
    int sv[2];
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
        sigprocmask(SIG_BLOCK, &chld, &old) != 0) {
      fprintf(stderr, "sandbox-init: supervisor setup: %s\n", strerror(errno));
      return 125;
    }
    pid_t child = fork();
    if (child < 0) {
      fprintf(stderr, "sandbox-init: fork: %s\n", strerror(errno));
      return 125;
    }
    if (child > 0) {
      close(sv[1]);
      close((int)started_fd);
      int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
      int listener = recv_fd(sv[0]);
      close(sv[0]);
      if (sigfd < 0) {
        kill(child, SIGKILL);
        return 125;
      }
      /* Nothing of the task's output stays open here. */
      int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        close(devnull);
      }
      close_from_except(3, sigfd, report_fd, listener);
      return supervise(child, listener, sigfd);
    }
    /* The task. */
    close(sv[0]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (install_exec_notifier(sv[1]) != 0) return 125;
    close(sv[1]);
  }
  if (abi > 0 && mcpg_landlock_apply(&policy, abi, prebuilt) != 0) return 125;

  char started = 'S';
  if (write((int)started_fd, &started, 1) != 1) {
    fprintf(stderr, "sandbox-init: cannot signal start: %s\n", strerror(errno));
    return 125;
  }
  close_from(3);

  execvp(command[0], command);
  int err = errno;
  fprintf(stderr, "sandbox: cannot execute %s: %s\n", command[0], strerror(err));
  return err == ENOENT ? 127 : 126;
}
