#ifndef MCPG_SPAWNER_H
#define MCPG_SPAWNER_H

/** `mcpg-sandbox-helper spawner RUNNER_PID`: forks and executes the runner's launchers on
 * request (spawner.c). */
int mcpg_spawner(int argc, char **argv);

#endif
