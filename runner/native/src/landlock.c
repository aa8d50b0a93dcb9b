/*
 * landlock.c — the sandbox's Landlock layer: what the kernel itself refuses to a task,
 * whatever the task's programs do (see docs/security/sandbox.md, "Landlock").
 *
 * Landlock is an allowlist: every handled access right is refused unless a rule grants it
 * on the file or on a directory above it. The ruleset built here grants:
 *
 *   - READ_DIR everywhere (listing and path walks of what bwrap bound);
 *   - READ_FILE and (unless the decision lists the allowed programs) EXECUTE on everything
 *     bwrap bound, EXCEPT in the program directories (the sandbox PATH, resolved), where
 *     each file gets its own rule: a denied program (by name, name prefix, or any hard link
 *     to one in those directories) gets none, so neither execve(2) nor the dynamic loader
 *     (`ld.so /usr/bin/dd`, which maps the file after open(2)) nor cp can use it; and
 *     EXCEPT in writable directories without execution (workspace, /tmp, /dev/shm when the
 *     decision says noexec), which get READ_FILE only;
 *   - in list mode (a tenant with allowed_commands): EXECUTE only on the resolved allowed
 *     programs, the interpreters their `#!` lines name, and their ELF loader; READ_FILE in
 *     the program directories only on those files;
 *   - write rights (no device nodes) only beneath the writable directories; WRITE_FILE,
 *     TRUNCATE and device ioctls beneath /dev (null, tty, pts);
 *   - with TCP ports: connect(2) only to those ports (ABI >= 4);
 *   - scoping (ABI >= 6): no signals to and no abstract UNIX sockets of processes outside
 *     the task's domain (the supervisor, bwrap's PID 1).
 *
 * The kernel's headers on the build host may be older than the running kernel, so the UAPI
 * structures and constants are spelled out here (they are stable kernel ABI).
 */
#define _GNU_SOURCE
#include "landlock.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2

#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_REMOVE_DIR (1ULL << 4)
#define FS_REMOVE_FILE (1ULL << 5)
#define FS_MAKE_CHAR (1ULL << 6)
#define FS_MAKE_DIR (1ULL << 7)
#define FS_MAKE_REG (1ULL << 8)
#define FS_MAKE_SOCK (1ULL << 9)
#define FS_MAKE_FIFO (1ULL << 10)
#define FS_MAKE_BLOCK (1ULL << 11)
#define FS_MAKE_SYM (1ULL << 12)
#define FS_REFER (1ULL << 13)
#define FS_TRUNCATE (1ULL << 14)
#define FS_IOCTL_DEV (1ULL << 15)
#define NET_CONNECT_TCP (1ULL << 1)
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define SCOPE_SIGNAL (1ULL << 1)

/** Rights a rule on a non-directory may carry. */
#define FILE_RIGHTS (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
/** Rights beneath a writable directory (never device nodes). */
#define WRITE_RIGHTS                                                                         \
  (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG |             \
   FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE)

struct ll_ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct ll_path_beneath_attr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
  uint64_t allowed_access;
  uint64_t port;
};

int mcpg_landlock_abi(void) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : (int)abi;
}

static uint64_t handled_fs_for(int abi) {
  uint64_t h = (FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0-12 */
  if (abi >= 2) h |= FS_REFER;
  if (abi >= 3) h |= FS_TRUNCATE;
  if (abi >= 5) h |= FS_IOCTL_DEV;
  return h;
}

/* ---- preparation ----------------------------------------------------------------- */

static int find_prog(const struct mcpg_prog *list, size_t n, dev_t dev, ino_t ino) {
  for (size_t i = 0; i < n; i++) {
    if (list[i].dev == dev && list[i].ino == ino) return (int)i;
  }
  return -1;
}

static int name_denied(const struct mcpg_landlock_policy *p, const char *name,
                       const char **matched) {
  for (size_t i = 0; i < p->n_denied; i++) {
    if (strcmp(name, p->denied[i]) == 0) {
      *matched = p->denied[i];
      return 1;
    }
  }
  for (size_t i = 0; i < p->n_denied_prefixes; i++) {
    size_t l = strlen(p->denied_prefixes[i]);
    if (l > 0 && strncmp(name, p->denied_prefixes[i], l) == 0) {
      *matched = p->denied_prefixes[i];
      return 1;
    }
  }
  return 0;
}

/** Adds a resolved allowed file (list mode); 0, or -1 when the table is full. */
static int add_allowed(struct mcpg_landlock_policy *p, const char *real) {
  struct stat st;
  if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  if (find_prog(p->allowed_files, p->n_allowed_files, st.st_dev, st.st_ino) >= 0) return 0;
  /* A denied program is never executable, even if a tenant lists it. */
  if (find_prog(p->denied_files, p->n_denied_files, st.st_dev, st.st_ino) >= 0) return 0;
  if (p->n_allowed_files >= sizeof p->allowed_paths / sizeof p->allowed_paths[0]) return -1;
  struct mcpg_prog *e = &p->allowed_files[p->n_allowed_files];
  e->dev = st.st_dev;
  e->ino = st.st_ino;
  e->name[0] = '\0';
  snprintf(p->allowed_paths[p->n_allowed_files], sizeof p->allowed_paths[0], "%s", real);
  p->n_allowed_files++;
  return 0;
}

/** Looks a bare name up in the program directories (PATH order); 0 if found. */
static int lookup(const struct mcpg_landlock_policy *p, const char *name, char *out) {
  for (size_t i = 0; i < p->n_prog_dirs; i++) {
    char cand[PATH_MAX];
    if (snprintf(cand, sizeof cand, "%s/%s", p->prog_dirs[i], name) >= (int)sizeof cand) continue;
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0) {
      if (realpath(cand, out) != NULL) return 0;
    }
  }
  return -1;
}

/** The ELF program interpreter (PT_INTERP) of an open file, or "" if none. */
static void elf_interp(int fd, char *out, size_t size) {
  out[0] = '\0';
  Elf64_Ehdr eh;
  if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh) return;
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return;
  if (eh.e_ident[EI_CLASS] == ELFCLASS64) {
    for (int i = 0; i < eh.e_phnum && i < 64; i++) {
      Elf64_Phdr ph;
      if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
          (ssize_t)sizeof ph)
        return;
      if (ph.p_type == PT_INTERP && ph.p_filesz > 0 && ph.p_filesz < size) {
        if (pread(fd, out, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz) {
          out[0] = '\0';
          return;
        }
        out[ph.p_filesz] = '\0';
        return;
      }
    }
  } else if (eh.e_ident[EI_CLASS] == ELFCLASS32) {
    Elf32_Ehdr e32;
    if (pread(fd, &e32, sizeof e32, 0) != (ssize_t)sizeof e32) return;
    for (int i = 0; i < e32.e_phnum && i < 64; i++) {
      Elf32_Phdr ph;
      if (pread(fd, &ph, sizeof ph, (off_t)(e32.e_phoff + (uint32_t)i * e32.e_phentsize)) !=
          (ssize_t)sizeof ph)
        return;
      if (ph.p_type == PT_INTERP && ph.p_filesz > 0 && ph.p_filesz < size) {
        if (pread(fd, out, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz) {
          out[0] = '\0';
          return;
        }
        out[ph.p_filesz] = '\0';
        return;
      }
    }
  }
}

/**
 * The `#!` interpreter of a script and, for `#!/usr/bin/env [-S] prog`, the program env
 * runs. Returns the number of words found (0-2).
 */
static int shebang(const char *path, char *interp, char *arg, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 0;
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  if (n < 3 || buf[0] != '#' || buf[1] != '!') return 0;
  buf[n] = '\0';
  char *nl = strchr(buf, '\n');
  if (nl != NULL) *nl = '\0';
  char *save = NULL;
  char *w1 = strtok_r(buf + 2, " \t", &save);
  if (w1 == NULL) return 0;
  snprintf(interp, size, "%s", w1);
  char *w2 = strtok_r(NULL, " \t", &save);
  while (w2 != NULL && w2[0] == '-') w2 = strtok_r(NULL, " \t", &save); /* env -S prog */
  if (w2 == NULL) return 1;
  snprintf(arg, size, "%s", w2);
  return 2;
}

/** Adds `real` and, recursively (depth-bounded), the interpreters it needs. */
static int add_with_interpreters(struct mcpg_landlock_policy *p, const char *real, int depth) {
  if (depth > 4) return 0;
  if (add_allowed(p, real) != 0) return -1;
  int fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 0;
  char loader[PATH_MAX];
  elf_interp(fd, loader, sizeof loader);
  close(fd);
  char resolved[PATH_MAX];
  if (loader[0] != '\0') {
    if (realpath(loader, resolved) != NULL) return add_allowed(p, resolved);
    return 0;
  }
  char interp[PATH_MAX];
  char arg[PATH_MAX];
  int words = shebang(real, interp, arg, sizeof interp);
  if (words == 0) return 0;
  if (realpath(interp, resolved) == NULL) return 0;
  if (add_with_interpreters(p, resolved, depth + 1) != 0) return -1;
  const char *base = strrchr(interp, '/');
  base = base == NULL ? interp : base + 1;
  if (words == 2 && strcmp(base, "env") == 0) {
    char prog[PATH_MAX];
    if (strchr(arg, '/') != NULL ? realpath(arg, prog) != NULL : lookup(p, arg, prog) == 0) {
      return add_with_interpreters(p, prog, depth + 1);
    }
  }
  return 0;
}

int mcpg_landlock_prepare(struct mcpg_landlock_policy *p) {
  p->n_prog_dirs = 0;
  p->n_denied_files = 0;
  p->n_allowed_files = 0;
  /* Program directories: the PATH entries, resolved (/bin -> /usr/bin), without repeats. */
  char path[4096];
  snprintf(path, sizeof path, "%s", p->path_env != NULL ? p->path_env : "");
  char *save = NULL;
  for (char *d = strtok_r(path, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
    char real[PATH_MAX];
    if (d[0] != '/' || realpath(d, real) == NULL) continue;
    int seen = 0;
    for (size_t i = 0; i < p->n_prog_dirs; i++) seen |= strcmp(p->prog_dirs[i], real) == 0;
    if (seen || p->n_prog_dirs >= sizeof p->prog_dirs / sizeof p->prog_dirs[0]) continue;
    snprintf(p->prog_dirs[p->n_prog_dirs++], sizeof p->prog_dirs[0], "%s", real);
  }
  /* Denied files: every entry of a program directory whose name is denied, followed
   * through symlinks; hard links to them are caught by inode when rules are added. */
  for (size_t i = 0; i < p->n_prog_dirs; i++) {
    DIR *dir = opendir(p->prog_dirs[i]);
    if (dir == NULL) continue;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
      const char *matched = NULL;
      if (!name_denied(p, de->d_name, &matched)) continue;
      struct stat st;
      if (fstatat(dirfd(dir), de->d_name, &st, 0) != 0 || S_ISDIR(st.st_mode)) continue;
      if (find_prog(p->denied_files, p->n_denied_files, st.st_dev, st.st_ino) >= 0) continue;
      if (p->n_denied_files >= MCPG_MAX_PROGS) {
        closedir(dir);
        fprintf(stderr, "sandbox: too many denied programs\n");
        return -1;
      }
      struct mcpg_prog *e = &p->denied_files[p->n_denied_files++];
      e->dev = st.st_dev;
      e->ino = st.st_ino;
      snprintf(e->name, sizeof e->name, "%s", matched);
    }
    closedir(dir);
  }
  if (!p->list_mode) return 0;
  for (size_t i = 0; i < p->n_allowed; i++) {
    char real[PATH_MAX];
    const char *name = p->allowed[i];
    int found = strchr(name, '/') != NULL ? (realpath(name, real) != NULL ? 0 : -1)
                                          : lookup(p, name, real);
    if (found != 0) continue; /* not installed: nothing to allow */
    if (add_with_interpreters(p, real, 0) != 0) {
      fprintf(stderr, "sandbox: too many allowed programs\n");
      return -1;
    }
  }
  return 0;
}

/* ---- rules ------------------------------------------------------------------------- */

struct builder {
  const struct mcpg_landlock_policy *p;
  int ruleset;
  uint64_t handled;
  /** Access beneath ordinary directories (READ_FILE, plus EXECUTE outside list mode). */
  uint64_t base;
  /** The program directories' rules are in the ruleset already (mcpg_landlock_prebuild). */
  int prog_dirs_done;
};

/** Adds a rule for `path` (an open O_PATH fd is taken on it); missing paths are skipped. */
static int add_rule_fd(struct builder *b, int fd, uint64_t access, int critical) {
  struct stat st;
  if (fstat(fd, &st) != 0) return critical ? -1 : 0;
  if (!S_ISDIR(st.st_mode)) access &= FILE_RIGHTS;
  access &= b->handled;
  if (access == 0) return 0;
  struct ll_path_beneath_attr attr = {.allowed_access = access, .parent_fd = fd};
  if (syscall(SYS_landlock_add_rule, b->ruleset, LL_RULE_PATH_BENEATH, &attr, 0) != 0) {
    return critical ? -1 : 0; /* a rule that cannot be added only takes access away */
  }
  return 0;
}

static int add_rule(struct builder *b, const char *path, uint64_t access, int critical) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) {
    if (!critical || errno == ENOENT) return 0;
    fprintf(stderr, "sandbox: Landlock: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = add_rule_fd(b, fd, access, critical);
  if (rc != 0) fprintf(stderr, "sandbox: Landlock: rule for %s: %s\n", path, strerror(errno));
  close(fd);
  return rc;
}

static int is_prog_dir(const struct mcpg_landlock_policy *p, const char *path) {
  for (size_t i = 0; i < p->n_prog_dirs; i++) {
    if (strcmp(p->prog_dirs[i], path) == 0) return 1;
  }
  return 0;
}

/** -1: not a writable dir; else its index. */
static int write_dir_index(const struct mcpg_landlock_policy *p, const char *path) {
  for (size_t i = 0; i < p->n_write; i++) {
    if (strcmp(p->write_dirs[i], path) == 0) return (int)i;
  }
  return -1;
}

static int beneath(const char *dir, const char *path) {
  size_t l = strlen(dir);
  if (strcmp(dir, "/") == 0) return path[0] == '/' && path[1] != '\0';
  return strncmp(path, dir, l) == 0 && path[l] == '/';
}

/** True when a directory that needs its own treatment lies strictly beneath `path`. */
static int hole_beneath(const struct builder *b, const char *path) {
  const struct mcpg_landlock_policy *p = b->p;
  for (size_t i = 0; i < p->n_prog_dirs; i++) {
    if (beneath(path, p->prog_dirs[i])) return 1;
  }
  for (size_t i = 0; i < p->n_write; i++) {
    if (beneath(path, p->write_dirs[i])) return 1;
  }
  return 0;
}

static int permitted_prog(const struct builder *b, dev_t dev, ino_t ino) {
  const struct mcpg_landlock_policy *p = b->p;
  if (find_prog(p->denied_files, p->n_denied_files, dev, ino) >= 0) return 0;
  if (p->list_mode) return find_prog(p->allowed_files, p->n_allowed_files, dev, ino) >= 0;
  return 1;
}

static int walk(struct builder *b, const char *path, int depth);

/** O_PATH descriptors of rules already added, closed together (see flush_fds). */
struct fd_batch {
  int fds[16];
  size_t n;
};

/** Closes the batch: one close_range(2) when its descriptors are exactly one contiguous
 * range (they are distinct, so count == max - min + 1 means nothing else lies between),
 * else one close(2) each. */
static void flush_fds(struct fd_batch *fb) {
  if (fb->n == 0) return;
  int lo = fb->fds[0];
  int hi = fb->fds[0];
  for (size_t i = 1; i < fb->n; i++) {
    if (fb->fds[i] < lo) lo = fb->fds[i];
    if (fb->fds[i] > hi) hi = fb->fds[i];
  }
  int closed = 0;
#ifdef SYS_close_range
  if ((size_t)(hi - lo) + 1 == fb->n) {
    closed = syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0) == 0;
  }
#endif
  if (!closed) {
    for (size_t i = 0; i < fb->n; i++) close(fb->fds[i]);
  }
  fb->n = 0;
}

/** A program directory: one rule per permitted file, none for denied ones.
 *
 * Runs on every task start with ~1,000 entries in /usr/bin, so it spends as few system
 * calls per entry as it can: the entry type from readdir(3) (a stat only where the file
 * system does not give it), then open(O_PATH | O_NOFOLLOW), fstat of that descriptor (the
 * decision is made on the very inode the rule is added for: no window between a check by
 * name and the open), the rule, and descriptors closed in small batches (RLIMIT_NOFILE is
 * already the task's here: a batch that meets it is closed and the open tried again). */
static int walk_prog_dir(struct builder *b, const char *path, int depth) {
  DIR *dir = opendir(path);
  if (dir == NULL) return 0;
  int dfd = dirfd(dir);
  struct fd_batch fb = {.n = 0};
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(dir)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (de->d_type == DT_LNK) continue; /* the target has its own rule (or none) */
    if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISLNK(st.st_mode)) continue;
      if (S_ISDIR(st.st_mode)) {
        char child[PATH_MAX];
        if (snprintf(child, sizeof child, "%s/%s", path, de->d_name) >= (int)sizeof child) continue;
        flush_fds(&fb);
        rc = walk(b, child, depth + 1);
        continue;
      }
    }
    int fd = openat(dfd, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && fb.n > 0) {
      /* RLIMIT_NOFILE is already the task's (as low as a few dozen): make room, try again. */
      flush_fds(&fb);
      fd = openat(dfd, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) continue;
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) &&
        permitted_prog(b, st.st_dev, st.st_ino)) {
      uint64_t access = (FS_READ_FILE | FS_EXECUTE) & b->handled;
      struct ll_path_beneath_attr attr = {.allowed_access = access, .parent_fd = fd};
      /* a rule that cannot be added only takes access away */
      if (access != 0) (void)syscall(SYS_landlock_add_rule, b->ruleset, LL_RULE_PATH_BENEATH, &attr, 0);
    }
    fb.fds[fb.n++] = fd;
    if (fb.n == sizeof fb.fds / sizeof fb.fds[0]) flush_fds(&fb);
  }
  flush_fds(&fb);
  closedir(dir);
  return rc;
}

/** Grants b->base beneath `path`, except the program and writable directories in it. */
static int walk(struct builder *b, const char *path, int depth) {
  if (depth > 16) return 0;
  if (is_prog_dir(b->p, path)) return b->prog_dirs_done ? 0 : walk_prog_dir(b, path, depth);
  int w = write_dir_index(b->p, path);
  if (w >= 0) {
    uint64_t exec = (!b->p->list_mode && b->p->exec_dirs[w]) ? FS_EXECUTE : 0;
    return add_rule(b, path, FS_READ_FILE | WRITE_RIGHTS | exec, 1);
  }
  if (!hole_beneath(b, path)) return add_rule(b, path, b->base, 0);
  DIR *dir = opendir(path);
  if (dir == NULL) return 0;
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(dir)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(st.st_mode)) continue;
    char child[PATH_MAX];
    int len = strcmp(path, "/") == 0 ? snprintf(child, sizeof child, "/%s", de->d_name)
                                     : snprintf(child, sizeof child, "%s/%s", path, de->d_name);
    if (len >= (int)sizeof child) continue;
    if (S_ISDIR(st.st_mode)) {
      rc = walk(b, child, depth + 1);
    } else {
      rc = add_rule(b, child, b->base, 0);
    }
  }
  closedir(dir);
  return rc;
}

/** `abi`, never above the kernel's; below 1 when the kernel has no Landlock. */
static int clamp_abi(int abi) {
  int kernel = mcpg_landlock_abi();
  return abi > kernel ? kernel : abi;
}

/** The builder for a policy's rules in `ruleset` (base: READ_FILE, EXECUTE outside list mode). */
static struct builder builder_for(const struct mcpg_landlock_policy *p, int ruleset,
                                  uint64_t handled, int prog_dirs_done) {
  struct builder b = {
      .p = p,
      .ruleset = ruleset,
      .handled = handled,
      .base = FS_READ_FILE | (p->list_mode ? 0 : FS_EXECUTE),
      .prog_dirs_done = prog_dirs_done,
  };
  return b;
}

/** The ABI to use (never above the kernel's) and a ruleset handling what it offers; -1 with
 * a message on stderr. */
static int create_ruleset(int *abi, int net, uint64_t *handled_fs) {
  *abi = clamp_abi(*abi);
  if (*abi < 1) {
    fprintf(stderr, "sandbox: Landlock is not available in this kernel\n");
    return -1;
  }
  if (net && *abi < 4) {
    fprintf(stderr, "sandbox: TCP port rules need Landlock ABI 4 (kernel has %d)\n", *abi);
    return -1;
  }
  struct ll_ruleset_attr attr = {0};
  attr.handled_access_fs = handled_fs_for(*abi);
  if (net) attr.handled_access_net = NET_CONNECT_TCP;
  if (*abi >= 6) attr.scoped = SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET;
  size_t size = *abi >= 6 ? 24 : *abi >= 4 ? 16 : 8;
  int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
  if (fd < 0) {
    fprintf(stderr, "sandbox: landlock_create_ruleset: %s\n", strerror(errno));
    return -1;
  }
  *handled_fs = attr.handled_access_fs;
  return fd;
}

/** Depth of a path in walk()'s counting ("/" 0, "/usr" 1, "/usr/bin" 2). */
static int depth_of(const char *path) {
  int d = 0;
  for (const char *c = path; *c != '\0'; c++) d += *c == '/' && c[1] != '\0';
  return d;
}

int mcpg_landlock_prebuild(const struct mcpg_landlock_policy *p, int abi, int net) {
  /* List mode resolves names, scripts and interpreters anywhere on the host, which the sandbox
   * may not see the same way: those rules are only ever built inside. */
  if (p->list_mode) return -1;
  uint64_t handled = 0;
  int fd = create_ruleset(&abi, net, &handled);
  if (fd < 0) return -1;
  struct builder b = builder_for(p, fd, handled, 0);
  int rc = 0;
  for (size_t i = 0; i < p->n_prog_dirs && rc == 0; i++) {
    rc = walk_prog_dir(&b, p->prog_dirs[i], depth_of(p->prog_dirs[i]));
  }
  if (rc != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int cmp_prog(const void *a, const void *b) {
  const struct mcpg_prog *x = a;
  const struct mcpg_prog *y = b;
  if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
  if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
  return 0;
}

int mcpg_landlock_fingerprint(const struct mcpg_landlock_policy *p, int abi, int net, char *out,
                              size_t size) {
  size_t off = 0;
#define FP_PUT(...)                                                        \
  do {                                                                     \
    int n_ = snprintf(out + off, size - off, __VA_ARGS__);                 \
    if (n_ < 0 || (size_t)n_ >= size - off) return -1;                     \
    off += (size_t)n_;                                                     \
  } while (0)
  /* The ruleset's own attributes (handled rights, scoping, ports) follow from these. */
  FP_PUT("v1 abi %d net %d dirs %zu\n", clamp_abi(abi), net ? 1 : 0, p->n_prog_dirs);
  for (size_t i = 0; i < p->n_prog_dirs; i++) {
    struct stat st;
    if (stat(p->prog_dirs[i], &st) != 0) return -1;
    FP_PUT("%s %llu %llu %lld.%09ld %lld.%09ld\n", p->prog_dirs[i], (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
           (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  }
  struct mcpg_prog sorted[MCPG_MAX_PROGS];
  memcpy(sorted, p->denied_files, p->n_denied_files * sizeof sorted[0]);
  qsort(sorted, p->n_denied_files, sizeof sorted[0], cmp_prog);
  FP_PUT("denied %zu\n", p->n_denied_files);
  for (size_t i = 0; i < p->n_denied_files; i++) {
    FP_PUT("%llu:%llu\n", (unsigned long long)sorted[i].dev, (unsigned long long)sorted[i].ino);
  }
#undef FP_PUT
  return (int)off;
}

int mcpg_landlock_prebuilt_usable(const struct mcpg_landlock_policy *p, int abi,
                                  const char *fingerprint, size_t len) {
  if (p->list_mode) return 0;
  /* A writable directory in, under or above a program directory would need its own rules
   * there (the walk from "/" treats those directories differently). */
  for (size_t i = 0; i < p->n_prog_dirs; i++) {
    for (size_t w = 0; w < p->n_write; w++) {
      if (strcmp(p->prog_dirs[i], p->write_dirs[w]) == 0 ||
          beneath(p->prog_dirs[i], p->write_dirs[w]) ||
          beneath(p->write_dirs[w], p->prog_dirs[i])) {
        return 0;
      }
    }
  }
  /* The program directories and the denied files as the sandbox sees them now, against what
   * they were when the rules were built: any change (a package installed or upgraded, an
   * alternative switched, a link added) and the rules are built here instead. */
  static char now[64 * 1024];
  int n = mcpg_landlock_fingerprint(p, abi, p->n_ports > 0, now, sizeof now);
  return n > 0 && (size_t)n == len && memcmp(now, fingerprint, len) == 0;
}

int mcpg_landlock_apply(const struct mcpg_landlock_policy *p, int abi, int prebuilt) {
  uint64_t handled = 0;
  int fd;
  if (prebuilt >= 0) {
    /* Made by mcpg_landlock_prebuild with this ABI and net handling (the fingerprint says so). */
    abi = clamp_abi(abi);
    if (abi < 1) {
      fprintf(stderr, "sandbox: Landlock is not available in this kernel\n");
      return -1;
    }
    fd = prebuilt;
    handled = handled_fs_for(abi);
  } else {
    fd = create_ruleset(&abi, p->n_ports > 0, &handled);
    if (fd < 0) return -1;
  }
  struct builder b = builder_for(p, fd, handled, prebuilt >= 0);
  int rc = add_rule(&b, "/", FS_READ_DIR, 1);
  if (rc == 0) rc = walk(&b, "/", 0);
  /* Devices: writing /dev/null, terminals; ioctls on them (ABI 5). Never creating nodes. */
  if (rc == 0) rc = add_rule(&b, "/dev", FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV, 0);
  if (rc == 0 && p->list_mode) {
    for (size_t i = 0; i < p->n_allowed_files && rc == 0; i++) {
      rc = add_rule(&b, p->allowed_paths[i], FS_EXECUTE | FS_READ_FILE, 1);
    }
  }
  for (size_t i = 0; i < p->n_ports && rc == 0; i++) {
    struct ll_net_port_attr net = {.allowed_access = NET_CONNECT_TCP, .port = p->ports[i]};
    if (syscall(SYS_landlock_add_rule, fd, LL_RULE_NET_PORT, &net, 0) != 0) {
      fprintf(stderr, "sandbox: Landlock: port rule %u: %s\n", p->ports[i], strerror(errno));
      rc = -1;
    }
  }
  if (rc == 0 && syscall(SYS_landlock_restrict_self, fd, 0) != 0) {
    fprintf(stderr, "sandbox: landlock_restrict_self: %s\n", strerror(errno));
    rc = -1;
  }
  close(fd);
  return rc;
}

const char *mcpg_landlock_classify(const struct mcpg_landlock_policy *p, const char *real,
                                   const char **name) {
  *name = "";
  if (strncmp(real, "/memfd:", 7) == 0) return "memfd";
  struct stat st;
  if (stat(real, &st) != 0 || S_ISDIR(st.st_mode)) return NULL;
  int d = find_prog(p->denied_files, p->n_denied_files, st.st_dev, st.st_ino);
  if (d >= 0) {
    *name = p->denied_files[d].name;
    return "denied";
  }
  for (size_t i = 0; i < p->n_write; i++) {
    if (beneath(p->write_dirs[i], real) && (p->list_mode || !p->exec_dirs[i])) {
      *name = p->write_dirs[i];
      return "noexec";
    }
  }
  if (p->list_mode &&
      find_prog(p->allowed_files, p->n_allowed_files, st.st_dev, st.st_ino) < 0) {
    return "not_allowed";
  }
  return NULL;
}
