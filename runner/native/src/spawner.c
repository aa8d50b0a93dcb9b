/*
 * spawner.c — forks the runner's sandbox launchers, so the runner never forks itself.
 *
 *   mcpg-sandbox-helper spawner RUNNER_PID
 *
 * Node's child_process.spawn forks the whole runner (≈ 150 MB resident: its page tables are
 * copied, then torn down again by the child's exec) and blocks the runner's event loop until
 * the child has executed its program: ≈ 4 ms per sandbox on a quiet 2-core machine, more
 * under load (issue 13, ADR 0023). This small process does the fork and exec instead, on the
 * runner's request; the runner goes on meanwhile.
 *
 * Requests on stdin, each one frame: a 4-byte little-endian length, then that many bytes of
 * NUL-terminated fields:
 *   spawn ID UID GID STDIO PATH ARG0 ARGS...
 *       UID/GID: numbers, or "-" to keep the spawner's. STDIO: one comma-separated token per
 *       descriptor of the child, from 0: "n" /dev/null, "r" a pipe the child reads (the
 *       runner writes), "w" a pipe the child writes (the runner reads), "iN" the runner's
 *       own descriptor N (opened through /proc/RUNNER_PID/fd/N). The environment is empty.
 *   taken ID     the runner has opened its ends of ID's pipes: the spawner closes its copies
 *                (until then a child reading would never see EOF).
 *   kill ID SIG  signal ID's process, unless it has already been reaped (no pid reuse race).
 *   slot ID NAME         (with SLOTS_DIR) creates the empty directory SLOTS_DIR/NAME: a
 *                        prepared sandbox binds it at /workspace before any task is known
 *   bind ID NAME SRC     mounts a clone of the directory SRC (nosuid, nodev) onto that slot; a
 *                        sandbox that bound the slot sees it at /workspace (propagation)
 *   unslot ID NAME       unmounts whatever is on the slot and removes it
 *                        (NAME: letters, digits, '-' and '_'; answered "ok ID" or "failed ID …")
 * Answers on stdout, one line each:
 *   spawned ID PID FD,FD,...   the spawner's descriptor of the runner's end of each pipe, "-"
 *                              for the other slots; the runner opens /proc/SPAWNER/fd/FD
 *   failed ID MESSAGE          nothing was started (fork, pipe or exec failed)
 *   exit ID CODE SIGNAL        reaped: exit code (-1 when killed) and signal number (0: none)
 *
 * With SLOTS_DIR (an empty directory the runner made: `spawner RUNNER_PID SLOTS_DIR`) the
 * first line is "slots ok", or "slots failed MESSAGE" and no slot request works: a small
 * tmpfs is mounted there (its source names the runner: "mcpg-slots:PID"), a peer group of its
 * own, so that mounts made on its slots reach the sandboxes that bound them (a sandbox's
 * copies of the host's mounts are slaves: ADR 0028). Whatever was mounted on SLOTS_DIR
 * before (a previous spawner of this runner) is detached first, and so are the slot
 * mounts of runners that are gone (a spawner killed with SIGKILL leaves them). At exit, and
 * when the runner dies (its death signal here is SIGUSR1, for this), the tmpfs is detached
 * and SLOTS_DIR removed.
 *
 * It dies with the runner (PR_SET_PDEATHSIG), and its children, the launchers, die with it
 * (theirs): no sandbox outlives the runner. On EOF on stdin (the runner's sandbox closed) it
 * takes no more requests and exits once the launchers it started have ended.
 */
#define _GNU_SOURCE
#include "spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/** Most descriptors a child gets (the launcher uses 9). */
#define MAX_SLOTS 16
/** Largest request frame (a bwrap command line is far smaller). */
#define MAX_FRAME (4 << 20)
/** Most children alive at once (each holds a runner-side task). */
#define MAX_CHILDREN 4096

struct child {
  char id[32];
  /** 0 once reaped (the record stays until "taken": its pipe ends are the runner's). */
  pid_t pid;
  /** The runner's ends, held until "taken" (-1: none). */
  int ends[MAX_SLOTS];
  int n_ends;
};

static struct child *children[MAX_CHILDREN];
static size_t n_children;
static pid_t runner_pid;

static void cleanup_slots(void);
static void answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void answer(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) {
    /* (arguments are bounded below; a cut line still ends its line) */
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  for (int off = 0; off < n;) {
    ssize_t w = write(STDOUT_FILENO, line + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      cleanup_slots(); /* the runner is gone */
      _exit(1);
    }
    off += (int)w;
  }
}

static struct child *find(const char *id, size_t *index) {
  for (size_t i = 0; i < n_children; i++) {
    if (strcmp(children[i]->id, id) == 0) {
      if (index != NULL) *index = i;
      return children[i];
    }
  }
  return NULL;
}

/** Children not reaped yet. */
static size_t n_alive(void) {
  size_t n = 0;
  for (size_t i = 0; i < n_children; i++) n += children[i]->pid > 0;
  return n;
}

static void close_ends(struct child *c) {
  for (int i = 0; i < c->n_ends; i++) {
    if (c->ends[i] >= 0) close(c->ends[i]);
    c->ends[i] = -1;
  }
}

static void forget(size_t i) {
  close_ends(children[i]);
  free(children[i]);
  children[i] = children[--n_children];
}

/** Reads exactly n bytes; 0 on EOF before any byte, -1 on error or a short frame. */
static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

static int parse_id(const char *s, long max, long *out) {
  if (strcmp(s, "-") == 0) {
    *out = -1;
    return 0;
  }
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) return -1;
  *out = v;
  return 0;
}

/** In the child: descriptors into place, signals reset, ids dropped, program executed.
 * Writes errno to err_fd and exits 127 when anything fails. */
static void exec_child(int n, int *src, long uid, long gid, const char *path, char **argv,
                       int err_fd) {
  int err = 0;
  /* Every source out of the 0..n-1 range first, so no dup2 below overwrites one still needed. */
  for (int i = 0; i < n && err == 0; i++) {
    if (src[i] < n) {
      int moved = fcntl(src[i], F_DUPFD_CLOEXEC, n + 1);
      if (moved < 0) err = errno;
      src[i] = moved;
    }
  }
  if (err_fd < n + 1 && err == 0) {
    int moved = fcntl(err_fd, F_DUPFD_CLOEXEC, n + 1 + MAX_SLOTS);
    if (moved < 0) err = errno;
    err_fd = moved;
  }
  for (int i = 0; i < n && err == 0; i++) {
    if (dup2(src[i], i) < 0) err = errno; /* dup2 clears FD_CLOEXEC on the copy */
  }
  if (err == 0) {
    /* Nothing else of the spawner's (other children's pipe ends above all) reaches the child:
     * everything from n up is closed by the exec (err_fd too, which tells the spawner). */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
    if (syscall(SYS_close_range, (unsigned)n, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = n; fd < 4096; fd++) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  if (err == 0) {
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) err = errno;
  }
  if (err == 0 && (uid >= 0 || gid >= 0)) {
    /* As root, supplementary groups must go too (elsewhere there are none to drop). */
    if (setgroups(0, NULL) != 0 && geteuid() == 0) err = errno;
    if (err == 0 && gid >= 0 && setgid((gid_t)gid) != 0) err = errno;
    if (err == 0 && uid >= 0 && setuid((uid_t)uid) != 0) err = errno;
  }
  if (err == 0) {
    char *envp[] = {NULL};
    execve(path, argv, envp);
    err = errno;
  }
  while (write(err_fd, &err, sizeof err) < 0 && errno == EINTR) {
  }
  _exit(127);
}

static void do_spawn(char **f, int nf) {
  /* spawn ID UID GID STDIO PATH ARG0 ... */
  const char *id = f[1];
  long uid = -1;
  long gid = -1;
  if (nf < 7 || strlen(id) == 0 || strlen(id) >= sizeof children[0]->id || find(id, NULL) != NULL) {
    answer("failed %.40s invalid spawn request\n", nf > 1 ? f[1] : "-");
    return;
  }
  if (parse_id(f[2], 0x7fffffffL, &uid) != 0 || parse_id(f[3], 0x7fffffffL, &gid) != 0) {
    answer("failed %s invalid uid or gid\n", id);
    return;
  }
  if (n_children >= MAX_CHILDREN) {
    answer("failed %s too many launchers at once\n", id);
    return;
  }
  int src[MAX_SLOTS];
  int ends[MAX_SLOTS];
  int n = 0;
  int ok = 1;
  char spec[256];
  if (strlen(f[4]) >= sizeof spec) ok = 0;
  snprintf(spec, sizeof spec, "%s", f[4]);
  char *rest = spec;
  for (char *t = strsep(&rest, ","); t != NULL && ok; t = strsep(&rest, ",")) {
    if (n >= MAX_SLOTS || t[0] == '\0') {
      ok = 0;
      break;
    }
    src[n] = -1;
    ends[n] = -1;
    if (strcmp(t, "n") == 0) {
      src[n] = open("/dev/null", O_RDWR | O_CLOEXEC);
    } else if (strcmp(t, "r") == 0 || strcmp(t, "w") == 0) {
      int p[2];
      if (pipe2(p, O_CLOEXEC) == 0) {
        int child_reads = t[0] == 'r';
        src[n] = child_reads ? p[0] : p[1];
        ends[n] = child_reads ? p[1] : p[0];
      }
    } else if (t[0] == 'i') {
      long fd = -1;
      if (parse_id(t + 1, 1 << 20, &fd) == 0 && fd >= 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/%d/fd/%ld", (int)runner_pid, fd);
        /* The very file the runner holds (a magic link, not a path walk), as the runner
         * opened it where it can (a directory: read-only), else as a path. */
        src[n] = open(proc, O_RDONLY | O_CLOEXEC);
        if (src[n] < 0) src[n] = open(proc, O_PATH | O_CLOEXEC);
      }
    } else {
      ok = 0;
    }
    if (ok && src[n] < 0) ok = 0;
    n++;
  }
  int err_pipe[2] = {-1, -1};
  if (ok && n > 0 && pipe2(err_pipe, O_CLOEXEC) != 0) ok = 0;
  pid_t pid = -1;
  int saved = errno;
  if (ok && n > 0) {
    pid = fork();
    if (pid == 0) {
      close(err_pipe[0]);
      for (int i = 0; i < n; i++) {
        if (ends[i] >= 0) close(ends[i]);
      }
      exec_child(n, src, uid, gid, f[5], &f[6], err_pipe[1]);
    }
    saved = errno;
  }
  for (int i = 0; i < n; i++) {
    if (src[i] >= 0) close(src[i]);
  }
  if (err_pipe[1] >= 0) close(err_pipe[1]);
  if (pid < 0) {
    for (int i = 0; i < n; i++) {
      if (ends[i] >= 0) close(ends[i]);
    }
    if (err_pipe[0] >= 0) close(err_pipe[0]);
    answer("failed %s %s\n", id, ok && n > 0 ? strerror(saved) : "invalid descriptors");
    return;
  }
  /* Until the child has executed (EOF) or says why it could not. */
  int child_err = 0;
  ssize_t r;
  do {
    r = read(err_pipe[0], &child_err, sizeof child_err);
  } while (r < 0 && errno == EINTR);
  close(err_pipe[0]);
  struct child *c = calloc(1, sizeof *c);
  if (r == (ssize_t)sizeof child_err || c == NULL) {
    for (int i = 0; i < n; i++) {
      if (ends[i] >= 0) close(ends[i]);
    }
    /* Reaped by the SIGCHLD loop; its exit is not reported (nothing runs it). */
    if (c == NULL) kill(pid, SIGKILL);
    answer("failed %s cannot execute %.512s: %s\n", id, f[5],
           c == NULL ? "out of memory" : strerror(child_err));
    free(c);
    return;
  }
  snprintf(c->id, sizeof c->id, "%s", id);
  c->pid = pid;
  c->n_ends = n;
  char fds[MAX_SLOTS * 12];
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    c->ends[i] = ends[i];
    int w = ends[i] >= 0 ? snprintf(fds + off, sizeof fds - off, "%s%d", i ? "," : "", ends[i])
                         : snprintf(fds + off, sizeof fds - off, "%s-", i ? "," : "");
    off += (size_t)w;
  }
  children[n_children++] = c;
  answer("spawned %s %d %s\n", id, (int)pid, fds);
}

static void reap(void) {
  for (;;) {
    int st;
    pid_t w = waitpid(-1, &st, WNOHANG);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    for (size_t i = 0; i < n_children; i++) {
      if (children[i]->pid != w) continue;
      int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
      answer("exit %s %d %d\n", children[i]->id, code, sig);
      children[i]->pid = 0;
      /* Its pipe ends are kept until the runner has taken them (it may not have yet). */
      if (children[i]->n_ends == 0) forget(i);
      break;
    }
  }
}

/* ---- slots: where prepared sandboxes receive their workspace (ADR 0028) ---------------- */

/* The new mount API by system call (glibc has wrappers only since 2.36; the numbers are the
 * same on every architecture). */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define MCPG_OPEN_TREE_CLONE 1
#define MCPG_MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MCPG_MOUNT_ATTR_NOSUID 0x00000002
#define MCPG_MOUNT_ATTR_NODEV 0x00000004
struct mcpg_mount_attr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};

/**
 * Mounts a detached clone of the directory src (never a symlink in its last component) onto
 * target, nosuid and nodev as bwrap's binds; NULL, or the step that failed (errno set).
 */
static const char *clone_onto(const char *src, const char *target) {
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, src,
                          MCPG_OPEN_TREE_CLONE | O_CLOEXEC | AT_SYMLINK_NOFOLLOW);
  if (tree < 0) return "open_tree";
  struct mcpg_mount_attr attr = {.attr_set = MCPG_MOUNT_ATTR_NOSUID | MCPG_MOUNT_ATTR_NODEV};
  const char *step = NULL;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    step = "mount_setattr";
  } else if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MCPG_MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    step = "move_mount";
  }
  int err = errno;
  close(tree);
  errno = err;
  return step;
}

/** SLOTS_DIR when its tmpfs is mounted; NULL otherwise. */
static const char *slots_dir;

/** A slot's path for NAME, or -1 when NAME is not a plain name. */
static int slot_path(const char *name, char *out, size_t size) {
  size_t n = strlen(name);
  if (n == 0 || n > 64) return -1;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_')) {
      return -1;
    }
  }
  return snprintf(out, size, "%s/%s", slots_dir, name) < (int)size ? 0 : -1;
}

/** Detaches every mount stacked on path (EINVAL: none left). */
static void detach_all(const char *path) {
  for (int i = 0; i < 64 && umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0; i++) {
  }
}

/** Detaches the slot tmpfs of runners that are gone ("mcpg-slots:PID" in mountinfo). */
static void detach_stale(void) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL) return;
  char line[8192];
  while (fgets(line, sizeof line, f) != NULL) {
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS */
    char *dash = strstr(line, " - tmpfs mcpg-slots:");
    if (dash == NULL) continue;
    long pid = strtol(dash + strlen(" - tmpfs mcpg-slots:"), NULL, 10);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%ld", pid);
    if (pid <= 0 || access(proc, F_OK) == 0) continue;
    char mp[4096];
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 || strchr(mp, '\\') != NULL) continue;
    detach_all(mp);
    rmdir(mp);
  }
  fclose(f);
}

/** Mounts the slots tmpfs on dir and tries a slot mount on it; NULL, or why not. */
static const char *mount_slots(const char *dir) {
  static char why[512];
  detach_stale();
  detach_all(dir);
  char source[64];
  snprintf(source, sizeof source, "mcpg-slots:%d", (int)runner_pid);
  /* 0711: the sandbox uid reaches its own slot by name; nobody lists them. */
  if (mount(source, dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "size=64k,nr_inodes=4096,mode=0711") != 0) {
    snprintf(why, sizeof why, "cannot mount the slots tmpfs on %.256s: %s", dir, strerror(errno));
    return why;
  }
  /* A peer group of its own (not its parent's): slot mounts reach only the sandboxes. */
  if (mount(NULL, dir, NULL, MS_PRIVATE, NULL) != 0 || mount(NULL, dir, NULL, MS_SHARED, NULL) != 0) {
    snprintf(why, sizeof why, "cannot make the slots tmpfs shared: %s", strerror(errno));
    detach_all(dir);
    return why;
  }
  /* The whole sequence a task needs, once (a kernel before 5.12, or a seccomp profile that
   * allows mount(2) but not the new calls, fails here and prepared sandboxes stay off). */
  char probe[4096];
  snprintf(probe, sizeof probe, "%s/.probe", dir);
  const char *step = mkdir(probe, 0700) != 0 ? "mkdir" : clone_onto(dir, probe);
  if (step != NULL) {
    snprintf(why, sizeof why, "cannot mount a workspace on a slot (%s: %s)", step, strerror(errno));
    detach_all(dir);
    return why;
  }
  detach_all(probe);
  rmdir(probe);
  return NULL;
}

/** Detaches the slots and removes their directory (every exit of the spawner). */
static void cleanup_slots(void) {
  if (slots_dir == NULL) return;
  detach_all(slots_dir);
  rmdir(slots_dir);
}

static void do_slot(char **f, int nf) {
  char path[4096];
  const char *op = f[0];
  const char *id = f[1];
  if (slots_dir == NULL) {
    answer("failed %.40s the slots are not mounted (see the spawner's first line)\n", id);
    return;
  }
  if ((strcmp(op, "bind") == 0 ? nf != 4 : nf != 3) || slot_path(f[2], path, sizeof path) != 0) {
    answer("failed %.40s invalid %s request\n", id, op);
    return;
  }
  if (strcmp(op, "slot") == 0) {
    if (mkdir(path, 0755) != 0) {
      answer("failed %s mkdir %s: %s\n", id, f[2], strerror(errno));
      return;
    }
  } else if (strcmp(op, "unslot") == 0) {
    detach_all(path);
    if (rmdir(path) != 0 && errno != ENOENT) {
      answer("failed %s rmdir %s: %s\n", id, f[2], strerror(errno));
      return;
    }
  } else {
    /* A detached clone of the workspace's own mount or directory (never the symlink a path's
     * last component may be), nosuid and nodev as bwrap's binds, then moved onto the slot. */
    const char *src = f[3];
    if (src[0] != '/') {
      answer("failed %s the workspace path must be absolute\n", id);
      return;
    }
    const char *step = clone_onto(src, path);
    if (step != NULL) {
      answer("failed %s %s %.512s: %s\n", id, step, src, strerror(errno));
      return;
    }
  }
  answer("ok %s\n", id);
}

static void handle(char *buf, uint32_t len) {
  if (len == 0 || buf[len - 1] != '\0') {
    answer("failed - malformed request\n");
    return;
  }
  char *f[4096];
  int nf = 0;
  uint32_t i = 0;
  for (; i < len && nf < (int)(sizeof f / sizeof f[0]) - 1; i += (uint32_t)strlen(buf + i) + 1) {
    f[nf++] = buf + i;
  }
  f[nf] = NULL;
  if (i < len) {
    /* Never a shortened command line. */
    answer("failed %.40s too many fields in one request\n", nf > 1 ? f[1] : "-");
    return;
  }
  if (strcmp(f[0], "spawn") == 0) {
    do_spawn(f, nf);
  } else if (strcmp(f[0], "taken") == 0 && nf == 2) {
    size_t i = 0;
    struct child *c = find(f[1], &i);
    if (c != NULL) {
      close_ends(c);
      c->n_ends = 0;
      if (c->pid == 0) forget(i);
    }
  } else if (strcmp(f[0], "kill") == 0 && nf == 3) {
    struct child *c = find(f[1], NULL);
    long sig = 0;
    if (c != NULL && c->pid > 0 && parse_id(f[2], 64, &sig) == 0 && sig > 0) kill(c->pid, (int)sig);
  } else if ((strcmp(f[0], "slot") == 0 || strcmp(f[0], "bind") == 0 ||
              strcmp(f[0], "unslot") == 0) && nf >= 2) {
    do_slot(f, nf);
  } else {
    answer("failed - unknown request %.32s\n", f[0]);
  }
}

int mcpg_spawner(int argc, char **argv) {
  long pid = -1;
  if (argc < 2 || argc > 3 || parse_id(argv[1], 0x7fffffffL, &pid) != 0 || pid <= 0 ||
      (argc == 3 && argv[2][0] != '/')) {
    fprintf(stderr, "usage: spawner RUNNER_PID [SLOTS_DIR]\n");
    return 2;
  }
  runner_pid = (pid_t)pid;
  /* Die with the runner (checked after arming, to close the race): SIGUSR1, read below, so that
   * the slots are detached first (the launchers die with this process: theirs is SIGKILL). */
  sigset_t death;
  sigemptyset(&death);
  sigaddset(&death, SIGUSR1);
  if (sigprocmask(SIG_BLOCK, &death, NULL) != 0) return 125;
  if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0 || getppid() != runner_pid) return 125;
  /* The runner reopens the pipe ends through /proc/<this>/fd, which needs a dumpable process
   * (an execute-only or file-capability helper would not be). */
  if (prctl(PR_SET_DUMPABLE, 1) != 0) return 125;
  /* A terminal's ^C or a stop signal to the whole process group is for the runner, which then
   * stops its tasks in order; this process ends with it (PDEATHSIG) or on EOF. The children
   * get default dispositions back. */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigaddset(&chld, SIGUSR1);
  if (sigprocmask(SIG_BLOCK, &chld, NULL) != 0) return 125;
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    fprintf(stderr, "spawner: signalfd: %s\n", strerror(errno));
    return 125;
  }
  char *buf = malloc(MAX_FRAME);
  if (buf == NULL) return 125;
  if (argc == 3) {
    const char *why = mount_slots(argv[2]);
    if (why == NULL) {
      slots_dir = argv[2];
      answer("slots ok\n");
    } else {
      answer("slots failed %s\n", why);
    }
  }
  int eof = 0;
  for (;;) {
    if (eof && n_alive() == 0) {
      cleanup_slots();
      return 0;
    }
    struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
    if (poll(p, eof ? 1 : 2, -1) < 0) {
      if (errno == EINTR) continue;
      cleanup_slots();
      return 125;
    }
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      int runner_died = 0;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        runner_died |= si.ssi_signo == SIGUSR1;
      }
      if (runner_died) {
        cleanup_slots();
        _exit(1);
      }
      reap();
    }
    if (!eof && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      uint8_t hdr[4];
      int r = read_full(STDIN_FILENO, hdr, sizeof hdr);
      if (r == 0) {
        /* Nobody can take a pipe end or send a kill any more: readers must see EOF. */
        eof = 1;
        for (size_t k = 0; k < n_children; k++) close_ends(children[k]);
        continue;
      }
      uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
                     (uint32_t)hdr[3] << 24;
      if (r < 0 || len > MAX_FRAME || read_full(STDIN_FILENO, buf, len) != 1) {
        fprintf(stderr, "spawner: malformed request stream\n");
        cleanup_slots();
        return 125;
      }
      handle(buf, len);
      /* A child that failed to execute, reaped without being reported. */
      reap();
    }
  }
}
