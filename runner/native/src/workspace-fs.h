/* workspace-fs.h — file operations confined to one workspace (see workspace-fs.c). */
#ifndef MCPG_WORKSPACE_FS_H
#define MCPG_WORKSPACE_FS_H

/** Entry point of `mcpg-sandbox-helper fs ...`; argv[0] is "fs". */
int mcpg_workspace_fs(int argc, char **argv);

#endif
