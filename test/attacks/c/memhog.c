/*
 * memhog — memory-exhaustion attacks for the cgroup tests.
 *
 *   memhog memfd MIB          write MIB MiB into a memfd (shmem, not in RLIMIT_AS)
 *   memhog anon MIB           touch MIB MiB of anonymous memory, 1 MiB mappings at a time
 *   memhog fork N MIB         N processes, each touching MIB MiB (each under RLIMIT_AS)
 *   memhog setsid N MIB       like fork, but every child setsid()s and double-forks away
 *
 * Prints "<mode> done <MiB>" when everything was allocated (the limit did not hold),
 * "<mode> <errno name> <MiB>" when an allocation failed cleanly; then holds the memory
 * for a while so the cgroup has to act on a live task.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static int touch_anon(long mib) {
  for (long i = 0; i < mib; i++) {
    char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return (int)i;
    memset(p, 0x5a, MIB);
  }
  return (int)mib;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *mode = argv[1];
  if (strcmp(mode, "memfd") == 0) {
    long mib = atol(argv[2]);
    int fd = memfd_create("hog", 0);
    if (fd < 0) {
      printf("memfd create %s\n", strerrorname_np(errno));
      return 0;
    }
    static char buf[MIB];
    memset(buf, 0x5a, sizeof buf);
    for (long i = 0; i < mib; i++) {
      if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
        printf("memfd %s %ld\n", strerrorname_np(errno), i);
        fflush(stdout);
        sleep(30);
        return 0;
      }
    }
    printf("memfd done %ld\n", mib);
    fflush(stdout);
    sleep(30);
    return 0;
  }
  if (strcmp(mode, "anon") == 0) {
    long mib = atol(argv[2]);
    int got = touch_anon(mib);
    printf(got == mib ? "anon done %d\n" : "anon ENOMEM %d\n", got);
    fflush(stdout);
    sleep(30);
    return 0;
  }
  if ((strcmp(mode, "fork") == 0 || strcmp(mode, "setsid") == 0) && argc == 4) {
    int n = atoi(argv[2]);
    long mib = atol(argv[3]);
    int detach = strcmp(mode, "setsid") == 0;
    for (int i = 0; i < n; i++) {
      pid_t pid = fork();
      if (pid < 0) {
        printf("%s fork %s %d\n", mode, strerrorname_np(errno), i);
        break;
      }
      if (pid == 0) {
        if (detach) {
          setsid();
          if (fork() != 0) _exit(0);
        }
        touch_anon(mib);
        sleep(30);
        _exit(0);
      }
      if (detach) waitpid(pid, NULL, 0);
    }
    printf("%s done %ld\n", mode, (long)n * mib);
    fflush(stdout);
    sleep(30);
    return 0;
  }
  return 2;
}
