/* launch.h — host-side supervisor of one sandboxed task (see launch.c). */
#ifndef MCPG_LAUNCH_H
#define MCPG_LAUNCH_H

/** Entry point of `mcpg-sandbox-helper launch ...`; argv[0] is "launch". */
int mcpg_launch(int argc, char **argv);

#endif
