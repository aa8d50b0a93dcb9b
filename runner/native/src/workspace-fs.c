/*
 * workspace-fs.c — file operations confined to one workspace directory.
 *
 *   mcpg-sandbox-helper fs read   WORKSPACE PATH MAX_BYTES          > content
 *   mcpg-sandbox-helper fs write  WORKSPACE PATH MODE PARENTS MAX   < content
 *   mcpg-sandbox-helper fs delete WORKSPACE PATH RECURSIVE
 *   mcpg-sandbox-helper fs list   WORKSPACE PATH                    > records
 *
 * The runner spawns this as the unprivileged sandbox uid. Every path is
 * resolved with openat2(2) relative to a descriptor of the workspace, with
 *   RESOLVE_BENEATH        no "..", no absolute path may leave the workspace
 *   RESOLVE_NO_SYMLINKS    no symlink anywhere in the path (a previous task
 *                          may have planted one pointing at /etc)
 *   RESOLVE_NO_MAGICLINKS  no /proc-style magic links
 *   RESOLVE_NO_XDEV        no crossing into another mount
 * The kernel checks these atomically during the lookup, so there is no
 * check-then-use window. Opened files are then checked with fstat(): only
 * regular files, and never one with st_nlink > 1 (a hard link planted by a
 * previous task could point at a file outside the workspace).
 *
 * Errors: exit status 3 and one line "CODE\tmessage" on stderr, CODE being
 * one of the WorkspaceError codes of runner/src/workspace.
 * list output: records "T SIZE MODE MTIME_MS NAME\0" (T = f d l o).
 */
#define _GNU_SOURCE
#include "workspace-fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RESOLVE_FLAGS \
  (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
#define MAX_DEPTH 256
#define MAX_LIST_ENTRIES 100000

static void fail(const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s\t", code);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(3);
}

/* Maps an errno from a path lookup to a WorkspaceError code and exits. */
static void fail_errno(int err, const char *what, const char *path) {
  switch (err) {
    case ENOENT:
      fail("not_found", "%s: no such file or directory", path);
      break;
    case ELOOP:
      fail("escape_attempt", "%s: path contains a symbolic link", path);
      break;
    case EXDEV:
      fail("escape_attempt", "%s: path leaves the workspace", path);
      break;
    case ENOTDIR:
      fail("not_a_directory", "%s: a path component is not a directory", path);
      break;
    case EISDIR:
      fail("is_a_directory", "%s: is a directory", path);
      break;
    case EEXIST:
      fail("already_exists", "%s: already exists", path);
      break;
    case ENOTEMPTY:
      fail("is_a_directory", "%s: directory not empty (use recursive)", path);
      break;
    case EFBIG:
      fail("too_large", "%s: %s", path, strerror(err));
      break;
    case ENOSPC:
    case EDQUOT:
      /* The workspace's own filesystem (its quota) is full: bytes or inodes. */
      fail("quota_exceeded", "%s: %s", path, strerror(err));
      break;
    case ENXIO:
      fail("invalid_path", "%s: not a regular file", path);
      break;
    case ENOSYS:
      fail("io_error", "openat2 is not supported by this kernel (Linux >= 5.6 required)");
      break;
    default:
      fail("io_error", "%s %s: %s", what, path, strerror(err));
  }
}

/* Lexical validation; the kernel (RESOLVE_BENEATH) is the real guarantee. */
static void validate(const char *path, int allow_root) {
  size_t len = strlen(path);
  if (len > 4096) fail("invalid_path", "path too long");
  if (path[0] == '/') fail("escape_attempt", "%s: absolute paths are not allowed", path);
  const char *p = path;
  while (*p != '\0') {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      fail("escape_attempt", "%s: '..' is not allowed", path);
    }
    p += n;
    if (*p == '/') p++;
  }
  if (!allow_root && (len == 0 || strcmp(path, ".") == 0)) {
    fail("invalid_path", "the workspace root itself cannot be used here");
  }
}

static int open_beneath(int dirfd, const char *path, int flags, mode_t mode) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_FLAGS;
  long fd;
  do {
    fd = syscall(SYS_openat2, dirfd, path[0] ? path : ".", &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN); /* RESOLVE_* lookups may ask for a retry */
  return (int)fd;
}

static int open_workspace(const char *ws) {
  int fd = open(ws, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail("io_error", "cannot open workspace: %s", strerror(errno));
  return fd;
}

/* Splits "a/b/c" into parent "a/b" and leaf "c" (in place). */
static const char *split_leaf(char *path, const char **parent) {
  while (strlen(path) > 1 && path[strlen(path) - 1] == '/') path[strlen(path) - 1] = '\0';
  char *slash = strrchr(path, '/');
  if (slash == NULL) {
    *parent = "";
    return path;
  }
  *slash = '\0';
  *parent = path;
  return slash + 1;
}

static void check_regular(int fd, const char *path) {
  struct stat st;
  if (fstat(fd, &st) != 0) fail_errno(errno, "fstat", path);
  if (S_ISDIR(st.st_mode)) fail("is_a_directory", "%s: is a directory", path);
  if (!S_ISREG(st.st_mode)) fail("invalid_path", "%s: not a regular file", path);
  if (st.st_nlink > 1) {
    fail("escape_attempt", "%s: refusing a file with %lu hard links", path,
         (unsigned long)st.st_nlink);
  }
}

static int do_read(int ws, const char *path, unsigned long long max) {
  validate(path, 0);
  int fd = open_beneath(ws, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0);
  if (fd < 0) fail_errno(errno, "open", path);
  check_regular(fd, path);
  struct stat st;
  if (fstat(fd, &st) != 0) fail_errno(errno, "fstat", path);
  if ((unsigned long long)st.st_size > max) {
    fail("too_large", "%s: %lld bytes exceeds the read limit of %llu", path,
         (long long)st.st_size, max);
  }
  char buf[65536];
  unsigned long long total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "read", path);
    }
    if (n == 0) break;
    total += (unsigned long long)n;
    if (total > max) fail("too_large", "%s: grew beyond the read limit of %llu", path, max);
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(1, buf + off, (size_t)(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("io_error", "write to runner: %s", strerror(errno));
      }
      off += w;
    }
  }
  return 0;
}

/* Opens (creating when asked) each directory of `parent` under ws. */
static int open_parent(int ws, const char *parent, int create) {
  if (!create) {
    int fd = open_beneath(ws, parent, O_PATH | O_DIRECTORY, 0);
    if (fd < 0) fail_errno(errno, "open", parent[0] ? parent : ".");
    return fd;
  }
  int cur = dup(ws);
  char *copy = strdup(parent);
  if (copy == NULL || cur < 0) fail("io_error", "out of memory");
  char *save = NULL;
  for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
    if (strcmp(comp, ".") == 0) continue;
    if (mkdirat(cur, comp, 0755) != 0 && errno != EEXIST) fail_errno(errno, "mkdir", parent);
    int next = open_beneath(cur, comp, O_PATH | O_DIRECTORY, 0);
    if (next < 0) fail_errno(errno, "open", parent);
    close(cur);
    cur = next;
  }
  free(copy);
  return cur;
}

static int do_write(int ws, char *path, mode_t mode, int create_parents,
                    unsigned long long max) {
  validate(path, 0);
  /* Read the whole content first: nothing is touched if it is too large. */
  size_t cap = 65536, len = 0;
  char *data = malloc(cap);
  if (data == NULL) fail("io_error", "out of memory");
  for (;;) {
    if (len == cap) {
      cap *= 2;
      data = realloc(data, cap);
      if (data == NULL) fail("io_error", "out of memory");
    }
    ssize_t n = read(0, data + len, cap - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("io_error", "read from runner: %s", strerror(errno));
    }
    if (n == 0) break;
    len += (size_t)n;
    if (len > max) fail("too_large", "content exceeds the write limit of %llu bytes", max);
  }
  char display[4097];
  snprintf(display, sizeof display, "%s", path);
  const char *parent;
  const char *leaf = split_leaf(path, &parent);
  if (strcmp(leaf, ".") == 0 || leaf[0] == '\0') fail("invalid_path", "%s: no file name", display);
  int dir = open_parent(ws, parent, create_parents);
  /* No O_TRUNC: a planted hard link must be detected before anything
   * changes. O_NONBLOCK: opening a FIFO must not hang. */
  int fd = open_beneath(dir, leaf, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
                        mode & 0777);
  if (fd < 0) fail_errno(errno, "open", display);
  check_regular(fd, display);
  if (ftruncate(fd, 0) != 0) fail_errno(errno, "truncate", display);
  if (fchmod(fd, mode & 0777) != 0) fail_errno(errno, "chmod", display);
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  for (size_t off = 0; off < len;) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      /* Give the blocks back: a write that hit the quota leaves an empty file, not a full disk. */
      if (ftruncate(fd, 0) != 0) { /* reported below */ }
      fail_errno(err, "write", display);
    }
    off += (size_t)w;
  }
  if (close(fd) != 0) fail_errno(errno, "close", display);
  printf("%zu\n", len);
  return 0;
}

/* Removes directory `name` under `parent` without ever following a link. */
static void remove_tree(int parent, const char *name, const char *display, int depth) {
  if (depth > MAX_DEPTH) fail("io_error", "%s: directory tree too deep", display);
  int dfd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) fail_errno(errno, "open", display);
  DIR *d = fdopendir(dfd);
  if (d == NULL) fail_errno(errno, "opendir", display);
  struct dirent *e;
  for (;;) {
    errno = 0;
    e = readdir(d);
    if (e == NULL) break;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      fail_errno(errno, "stat", display);
    }
    if (S_ISDIR(st.st_mode)) {
      remove_tree(dfd, e->d_name, display, depth + 1);
    } else if (unlinkat(dfd, e->d_name, 0) != 0 && errno != ENOENT) {
      fail_errno(errno, "unlink", display);
    }
  }
  if (errno != 0) fail_errno(errno, "readdir", display);
  closedir(d);
  if (unlinkat(parent, name, AT_REMOVEDIR) != 0) fail_errno(errno, "rmdir", display);
}

static int do_delete(int ws, char *path, int recursive) {
  validate(path, 0);
  char display[4097];
  snprintf(display, sizeof display, "%s", path);
  const char *parent;
  const char *leaf = split_leaf(path, &parent);
  if (strcmp(leaf, ".") == 0 || leaf[0] == '\0') {
    fail("invalid_path", "the workspace root itself cannot be deleted");
  }
  int dir = open_beneath(ws, parent, O_RDONLY | O_DIRECTORY, 0);
  if (dir < 0) fail_errno(errno, "open", display);
  struct stat st;
  if (fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0) fail_errno(errno, "stat", display);
  if (S_ISDIR(st.st_mode)) {
    if (recursive) {
      remove_tree(dir, leaf, display, 0);
    } else if (unlinkat(dir, leaf, AT_REMOVEDIR) != 0) {
      fail_errno(errno, "rmdir", display);
    }
  } else if (unlinkat(dir, leaf, 0) != 0) {
    /* Unlinking a symlink or a hard link never touches its target. */
    fail_errno(errno, "unlink", display);
  }
  return 0;
}

static int do_list(int ws, const char *path) {
  validate(path, 1);
  int dfd = open_beneath(ws, path, O_RDONLY | O_DIRECTORY, 0);
  if (dfd < 0) fail_errno(errno, "open", path[0] ? path : ".");
  DIR *d = fdopendir(dfd);
  if (d == NULL) fail_errno(errno, "opendir", path);
  struct dirent *e;
  long count = 0;
  for (;;) {
    errno = 0;
    e = readdir(d);
    if (e == NULL) break;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (++count > MAX_LIST_ENTRIES) fail("too_large", "%s: too many entries", path);
    struct stat st;
    if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      fail_errno(errno, "stat", path);
    }
    char t = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'o';
    long long mtime_ms = (long long)st.st_mtim.tv_sec * 1000LL + st.st_mtim.tv_nsec / 1000000;
    printf("%c %lld %o %lld %s", t, (long long)st.st_size, (unsigned)(st.st_mode & 07777),
           mtime_ms, e->d_name);
    putchar('\0');
  }
  if (errno != 0) fail_errno(errno, "readdir", path);
  closedir(d);
  return 0;
}

int mcpg_workspace_fs(int argc, char **argv) {
  /* argv[0] = "fs", argv[1] = op, argv[2] = workspace, argv[3] = path */
  if (argc < 4) fail("io_error", "usage: fs OP WORKSPACE PATH [ARGS...]");
  umask(0);
  const char *op = argv[1];
  int ws = open_workspace(argv[2]);
  char *path = argv[3];
  if (strcmp(op, "read") == 0 && argc == 5) {
    return do_read(ws, path, strtoull(argv[4], NULL, 10));
  }
  if (strcmp(op, "write") == 0 && argc == 7) {
    return do_write(ws, path, (mode_t)strtoul(argv[4], NULL, 8), atoi(argv[5]),
                    strtoull(argv[6], NULL, 10));
  }
  if (strcmp(op, "delete") == 0 && argc == 5) return do_delete(ws, path, atoi(argv[4]));
  if (strcmp(op, "list") == 0 && argc == 4) return do_list(ws, path);
  fail("io_error", "unknown fs operation or wrong arguments: %s", op);
  return 3;
}
