/*
 * probe.c — attack probes run INSIDE the sandbox by test/attacks.
 *
 *   probe CHECK
 *
 * Prints "CHECK RESULT" where RESULT is "ok" (the call succeeded) or the errno
 * name of the failure (EPERM, ENOSYS, ...). Checks that should get the task
 * killed print nothing after "trying".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

static const char *errname(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH";
    case ESRCH: return "ESRCH";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EROFS: return "EROFS";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "errno%d", e);
      return buf;
    }
  }
}

static int report(const char *check, long rc) {
  if (rc < 0) printf("%s %s\n", check, errname(errno));
  else printf("%s ok\n", check);
  return 0;
}

/* A pseudo-terminal pair: the realistic TIOCSTI target. */
static int open_pty_slave(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) return -1;
  return open(ptsname(m), O_RDWR | O_NOCTTY);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: probe CHECK\n");
    return 2;
  }
  const char *c = argv[1];
  char ch = 'x';
  setvbuf(stdout, NULL, _IONBF, 0);

  if (!strcmp(c, "ptrace-pid1")) return report(c, ptrace(PTRACE_ATTACH, 1, 0, 0));
  if (!strcmp(c, "ptrace-traceme")) return report(c, ptrace(PTRACE_TRACEME, 0, 0, 0));
  if (!strcmp(c, "process-vm-readv")) {
    char buf[8];
    struct iovec l = {buf, sizeof buf}, r = {(void *)0x400000, sizeof buf};
    return report(c, process_vm_readv(1, &l, 1, &r, 1, 0));
  }
  if (!strcmp(c, "tiocsti-pty")) {
    int s = open_pty_slave();
    if (s < 0) return report("tiocsti-pty-open", -1);
    return report(c, ioctl(s, TIOCSTI, &ch));
  }
  if (!strcmp(c, "tiocsti-ctty")) {
    /* The pty becomes our controlling terminal, so the kernel itself would
     * allow TIOCSTI without any capability: only seccomp can refuse it. */
    int fds[2];
    if (pipe(fds) != 0) return report(c, -1);
    pid_t p = fork();
    if (p == 0) {
      int m = posix_openpt(O_RDWR | O_NOCTTY);
      if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || setsid() < 0) _exit(1);
      int s = open(ptsname(m), O_RDWR); /* no O_NOCTTY: becomes the controlling tty */
      if (s < 0) _exit(1);
      int r = ioctl(s, TIOCSTI, &ch) < 0 ? errno : 0;
      if (write(fds[1], &r, sizeof r) != sizeof r) _exit(1);
      _exit(0);
    }
    int r = -1;
    waitpid(p, NULL, 0);
    if (read(fds[0], &r, sizeof r) != sizeof r) return report("tiocsti-ctty-setup", -1);
    errno = r;
    return report(c, r == 0 ? 0 : -1);
  }
  if (!strcmp(c, "tiocsti-highbits")) {
    int s = open_pty_slave();
    if (s < 0) return report("tiocsti-pty-open", -1);
    return report(c, syscall(SYS_ioctl, s, 0xdead00000000UL | TIOCSTI, &ch));
  }
  if (!strcmp(c, "tioclinux")) {
    int s = open_pty_slave();
    if (s < 0) return report("tiocsti-pty-open", -1);
    char sub = 6;
    return report(c, ioctl(s, TIOCLINUX, &sub));
  }
  if (!strcmp(c, "ioctl-fionread")) {
    int p[2], n = 0;
    if (pipe(p) != 0) return report(c, -1);
    return report(c, ioctl(p[0], FIONREAD, &n));
  }
  if (!strcmp(c, "unshare-user")) return report(c, unshare(CLONE_NEWUSER));
  if (!strcmp(c, "unshare-net")) return report(c, unshare(CLONE_NEWNET));
  if (!strcmp(c, "clone-newuser")) {
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, NULL, 0);
    return report(c, r);
  }
  if (!strcmp(c, "clone3")) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &args, sizeof args);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, NULL, 0);
    return report(c, r);
  }
  if (!strcmp(c, "fork")) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p > 0) waitpid(p, NULL, 0);
    return report(c, p);
  }
  if (!strcmp(c, "mount")) return report(c, mount("none", "/tmp", "tmpfs", 0, NULL));
  if (!strcmp(c, "chroot")) return report(c, chroot("/tmp"));
  if (!strcmp(c, "setns")) {
    int fd = open("/proc/1/ns/mnt", O_RDONLY);
    return report(c, setns(fd, 0));
  }
  if (!strcmp(c, "io-uring-setup")) {
    char params[120];
    memset(params, 0, sizeof params);
    return report(c, syscall(SYS_io_uring_setup, 8, params));
  }
  if (!strcmp(c, "bpf")) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return report(c, syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
  }
  if (!strcmp(c, "perf-event-open")) {
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof pe;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    return report(c, syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
  }
  if (!strcmp(c, "userfaultfd")) return report(c, syscall(SYS_userfaultfd, 0));
  if (!strcmp(c, "keyctl")) return report(c, syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0));
  if (!strcmp(c, "add-key")) return report(c, syscall(SYS_add_key, "user", "k", "v", 1, -3));
  if (!strcmp(c, "kexec-load")) return report(c, syscall(SYS_kexec_load, 0, 0, 0, 0));
  if (!strcmp(c, "init-module")) return report(c, syscall(SYS_init_module, "", 0, ""));
  if (!strcmp(c, "personality-noaslr")) return report(c, personality(ADDR_NO_RANDOMIZE));
  if (!strcmp(c, "personality-query")) return report(c, personality(0xffffffff));
  if (!strcmp(c, "socket-netlink")) return report(c, socket(AF_NETLINK, SOCK_RAW, 0));
  if (!strcmp(c, "socket-packet")) return report(c, socket(AF_PACKET, SOCK_RAW, 0));
  if (!strcmp(c, "socket-vsock")) return report(c, socket(AF_VSOCK, SOCK_STREAM, 0));
  if (!strcmp(c, "socket-netlink-highbits")) {
    return report(c, syscall(SYS_socket, 0x100000000UL | AF_NETLINK, SOCK_RAW, 0));
  }
  if (!strcmp(c, "socket-unix")) return report(c, socket(AF_UNIX, SOCK_STREAM, 0));
  if (!strcmp(c, "socket-inet")) return report(c, socket(AF_INET, SOCK_STREAM, 0));
  if (!strcmp(c, "x32-getpid")) {
    /* x32 ABI: same arch token as x86_64, syscall number | 0x40000000. */
    return report(c, syscall(0x40000000 | SYS_getpid));
  }
  if (!strcmp(c, "i386-int80")) {
#if defined(__x86_64__)
    printf("%s trying\n", c);
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) /* i386 getpid */ : "memory");
    printf("%s returned %ld\n", c, ret);
    return 0;
#else
    printf("%s unsupported-arch\n", c);
    return 0;
#endif
  }
  if (!strcmp(c, "forkmany")) {
    /* Fork up to 200 sleeping children; report how many forks succeeded. */
    pid_t kids[200];
    int n = 0, err = 0;
    for (int i = 0; i < 200; i++) {
      pid_t p = fork();
      if (p == 0) {
        sleep(30);
        _exit(0);
      }
      if (p < 0) {
        err = errno;
        break;
      }
      kids[n++] = p;
    }
    for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
    printf("%s %d %s\n", c, n, err ? errname(err) : "none");
    return 0;
  }
  if (!strcmp(c, "fds")) {
    /* Every open descriptor except the one used to list them. */
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return report(c, -1);
    struct dirent *e;
    printf("%s", c);
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
      printf(" %s", e->d_name);
    }
    printf("\n");
    closedir(d);
    return 0;
  }
  fprintf(stderr, "unknown check %s\n", c);
  return 2;
}
