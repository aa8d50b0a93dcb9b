/*
 * landlock.h — the sandbox's Landlock layer (see landlock.c and docs/security/sandbox.md).
 */
#ifndef MCPG_LANDLOCK_H
#define MCPG_LANDLOCK_H

#include <stddef.h>
#include <sys/types.h>

/** Highest Landlock ABI the kernel supports (0: none; the syscall is missing or disabled). */
int mcpg_landlock_abi(void);

/** A program file the policy names, identified by device and inode (hard links included). */
struct mcpg_prog {
  dev_t dev;
  ino_t ino;
  /** Policy name that matched (denied list) or "" (allow list). */
  char name[64];
};

#define MCPG_MAX_LIST 64
#define MCPG_MAX_PROGS 512

/** What one task may do, from the decision's obligations (built by sandbox-init's options). */
struct mcpg_landlock_policy {
  /** 1: only `allowed` programs may be executed (restricted tenant); 0: everything but denied. */
  int list_mode;
  /** Program names allowed in list mode (resolved on PATH, plus shebang and ELF interpreters). */
  const char *allowed[MCPG_MAX_LIST];
  size_t n_allowed;
  /** Program names and name prefixes that are never executable nor readable in PATH dirs. */
  const char *denied[MCPG_MAX_LIST * 2];
  size_t n_denied;
  const char *denied_prefixes[MCPG_MAX_LIST];
  size_t n_denied_prefixes;
  /** Writable directories; exec_dirs[i] says whether programs there may be executed. */
  const char *write_dirs[8];
  int exec_dirs[8];
  size_t n_write;
  /** TCP ports connect(2) may reach (n_ports > 0: every other port is refused; ABI >= 4). */
  unsigned short ports[8];
  size_t n_ports;
  /** Sandbox PATH (the program directories are its entries, resolved). */
  const char *path_env;

  /* Filled by mcpg_landlock_prepare(): */
  /** Program directories (real paths of the PATH entries). */
  char prog_dirs[16][4096];
  size_t n_prog_dirs;
  /** Denied program files found in the program directories. */
  struct mcpg_prog denied_files[MCPG_MAX_PROGS];
  size_t n_denied_files;
  /** Executable files in list mode (programs, their interpreters, the ELF loader). */
  struct mcpg_prog allowed_files[MCPG_MAX_PROGS];
  char allowed_paths[MCPG_MAX_LIST * 3][4096];
  size_t n_allowed_files;
};

/**
 * Resolves the program directories, finds the denied files (by name and prefix, and every
 * hard link to one) and, in list mode, the allowed programs with their interpreters.
 * Returns 0, or -1 with a message on stderr.
 */
int mcpg_landlock_prepare(struct mcpg_landlock_policy *p);

/**
 * Builds the ruleset and restricts the calling thread (needs no_new_privs, which bwrap
 * sets). `abi` is the ABI to use (never above the kernel's). `prebuilt` (or -1) is a ruleset
 * from mcpg_landlock_prebuild for the same policy, ABI and ports: the program directories are
 * skipped, the rest is added to it. Returns 0 or -1 (message on stderr).
 */
int mcpg_landlock_apply(const struct mcpg_landlock_policy *p, int abi, int prebuilt);

/**
 * A ruleset (its descriptor, or -1) with only the program directories' rules: what
 * mcpg_landlock_apply would add for them, for a policy already prepared. Rules belong to
 * inodes, so it can be built outside the sandbox (a prepared launcher does, ADR 0024) as long
 * as the sandbox binds those directories from the same files. `net`: TCP ports will be limited.
 */
int mcpg_landlock_prebuild(const struct mcpg_landlock_policy *p, int abi, int net);

/**
 * What a prebuilt ruleset depends on, for a prepared policy: the ABI (clamped to the kernel's)
 * and whether ports are limited, each program directory's device,
 * inode, mtime and ctime (any entry added, removed or renamed changes them) and the denied
 * files' inodes (an alternative switched elsewhere changes those). Writes text into out;
 * returns its length, or -1.
 */
int mcpg_landlock_fingerprint(const struct mcpg_landlock_policy *p, int abi, int net, char *out,
                              size_t size);

/**
 * Whether a ruleset prebuilt with `fingerprint` may be used for this prepared policy: not in
 * list mode, no writable directory in or above a program directory, and the fingerprint (with
 * this ABI and the policy's ports) unchanged.
 */
int mcpg_landlock_prebuilt_usable(const struct mcpg_landlock_policy *p, int abi,
                                  const char *fingerprint, size_t len);

/** Why executing `real` (a resolved path) is refused, or NULL if the policy allows it. */
const char *mcpg_landlock_classify(const struct mcpg_landlock_policy *p, const char *real,
                                   const char **name);

#endif
