/*
 * alloc.c — tries to allocate and touch N MiB; prints "alloc ok" or "alloc ENOMEM".
 *   alloc MIB
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  size_t mib = strtoull(argv[1], NULL, 10);
  size_t len = mib << 20;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    printf("alloc ENOMEM\n");
    return 0;
  }
  memset(p, 1, len);
  printf("alloc ok\n");
  return 0;
}
