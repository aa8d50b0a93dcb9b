/*
 * helper.c — mcpg-sandbox-helper: the runner's native companion.
 *
 *   mcpg-sandbox-helper version
 *   mcpg-sandbox-helper bpf main|args        compiled seccomp program on stdout
 *   mcpg-sandbox-helper pfc main|args        the same, human-readable
 *   mcpg-sandbox-helper landlock-abi         the kernel's Landlock ABI (0: none)
 *   mcpg-sandbox-helper launch ...           host supervisor (launch.c)
 *   mcpg-sandbox-helper spawner RUNNER_PID   forks the launchers for the runner (spawner.c)
 *   mcpg-sandbox-helper fs ...               workspace file ops (workspace-fs.c)
 */
#define _GNU_SOURCE
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "landlock.h"
#include "launch.h"
#include "seccomp-policy.h"
#include "spawner.h"
#include "workspace-fs.h"

/** Bumped when the command-line protocol with the runner changes, or when an older helper must
 * not be used with this runner (5: the launcher's kill handling, ADR 0020 amendment; 6: the
 * spawner, ADR 0023; 7: a prepared launcher's prebuilt Landlock rules, ADR 0024; 8: prepared sandboxes and
 * slots, ADR 0028). */
#define MCPG_HELPER_PROTOCOL "mcpg-sandbox-helper 8"

static int export_filter(const char *which, int pfc) {
  enum mcpg_filter f;
  if (strcmp(which, "main") == 0) {
    f = MCPG_FILTER_MAIN;
  } else if (strcmp(which, "args") == 0) {
    f = MCPG_FILTER_ARGS;
  } else {
    fprintf(stderr, "unknown filter %s (main|args)\n", which);
    return 2;
  }
  scmp_filter_ctx ctx = mcpg_seccomp_build(f);
  if (ctx == NULL) return 1;
  int rc = pfc ? seccomp_export_pfc(ctx, STDOUT_FILENO) : seccomp_export_bpf(ctx, STDOUT_FILENO);
  seccomp_release(ctx);
  if (rc < 0) {
    fprintf(stderr, "seccomp export failed: %s\n", strerror(-rc));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "version") == 0) {
    const struct scmp_version *v = seccomp_version();
    printf("%s libseccomp %u.%u.%u\n", MCPG_HELPER_PROTOCOL, v->major, v->minor, v->micro);
    return 0;
  }
  if (argc == 2 && strcmp(argv[1], "landlock-abi") == 0) {
    printf("%d\n", mcpg_landlock_abi());
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "bpf") == 0) return export_filter(argv[2], 0);
  if (argc == 3 && strcmp(argv[1], "pfc") == 0) return export_filter(argv[2], 1);
  if (argc >= 2 && strcmp(argv[1], "launch") == 0) return mcpg_launch(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "spawner") == 0) return mcpg_spawner(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "fs") == 0) return mcpg_workspace_fs(argc - 1, argv + 1);
  fprintf(stderr, "usage: %s version | bpf main|args | pfc main|args | landlock-abi | launch ... | spawner PID | fs ...\n",
          argv[0]);
  return 2;
}
