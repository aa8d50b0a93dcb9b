/* seccomp-policy.h — builds the sandbox's two libseccomp filters. */
#ifndef MCPG_SECCOMP_POLICY_H
#define MCPG_SECCOMP_POLICY_H

#include <seccomp.h>

/** Which of the two filters to build (see seccomp-policy.c). */
enum mcpg_filter {
  MCPG_FILTER_MAIN = 0, /* default-deny allowlist */
  MCPG_FILTER_ARGS = 1, /* argument-level denials (ioctl) */
};

/** Builds the filter; NULL (with a message on stderr) on failure. */
scmp_filter_ctx mcpg_seccomp_build(enum mcpg_filter which);

#endif
