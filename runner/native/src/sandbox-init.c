/*
 * sandbox-init.c — first program bwrap runs INSIDE the sandbox.
 *
 *   mcpg-sandbox-init STARTED_FD AS NPROC FSIZE NOFILE CPU -- COMMAND [ARGS...]
 *
 * Runs after bwrap's setup, already under the seccomp filters and with no
 * capabilities. It:
 *   1. sets the resource limits (soft = hard, so they cannot be raised);
 *      RLIMIT_NPROC is set here, inside the sandbox's own user namespace, so
 *      the kernel counts it per sandbox rather than per host uid (shared by
 *      every concurrent task of the sandbox uid);
 *   2. writes one byte to STARTED_FD (tells the host launcher that bwrap's
 *      setup succeeded) and closes it;
 *   3. closes every descriptor above 2, so nothing the runner or bwrap held
 *      leaks into the task;
 *   4. execvp()s the command, looked up on the sandbox's PATH.
 *
 * Linked statically: it does not depend on the sandbox's /usr/lib.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

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

int main(int argc, char **argv) {
  if (argc < 9 || strcmp(argv[7], "--") != 0) {
    fprintf(stderr, "usage: %s STARTED_FD AS NPROC FSIZE NOFILE CPU -- COMMAND [ARGS...]\n",
            argv[0]);
    return 125;
  }
  unsigned long long started_fd, as, nproc, fsize, nofile, cpu;
  if (parse_u64(argv[1], &started_fd) || parse_u64(argv[2], &as) ||
      parse_u64(argv[3], &nproc) || parse_u64(argv[4], &fsize) ||
      parse_u64(argv[5], &nofile) || parse_u64(argv[6], &cpu)) {
    fprintf(stderr, "sandbox-init: invalid numeric argument\n");
    return 125;
  }

  /* CPU: SIGXCPU at the soft limit, SIGKILL one second later. */
  if (limit(RLIMIT_AS, as, as) || limit(RLIMIT_NPROC, nproc, nproc) ||
      limit(RLIMIT_FSIZE, fsize, fsize) || limit(RLIMIT_NOFILE, nofile, nofile) ||
      limit(RLIMIT_CPU, cpu, cpu + 1) || limit(RLIMIT_CORE, 0, 0)) {
    fprintf(stderr, "sandbox-init: setrlimit: %s\n", strerror(errno));
    return 125;
  }

  char started = 'S';
  if (write((int)started_fd, &started, 1) != 1) {
    fprintf(stderr, "sandbox-init: cannot signal start: %s\n", strerror(errno));
    return 125;
  }
  close_from(3);

  execvp(argv[8], &argv[8]);
  int err = errno;
  fprintf(stderr, "sandbox: cannot execute %s: %s\n", argv[8], strerror(err));
  return err == ENOENT ? 127 : 126;
}
