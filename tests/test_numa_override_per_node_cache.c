/*
 * Pins: NUMA placement, tested on any machine through the node-count override (CTest sets
 * APEX_NUMA_NODES=2). os.numa_nodes reports the count; a thread's node (thread.numa_node) follows
 * its CPU; a superblock mapped for a thread on a node that really exists is bound to it (mbind:
 * "prefer:<node>" in /proc/self/numa_maps); an empty superblock is cached per node and reused only
 * by threads on that node.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>

#include "decayutil.h"

static int pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

/* The superblock a new heap's first block lands in; the heap is returned for destruction. */
static uintptr_t superblock_of_new_heap(apex_heap_t **h) {
  *h = apex_heap_new();
  CHECK(*h != NULL, "apex_heap_new");
  void *p = apex_heap_alloc(*h, 100 * 1024, 16);
  CHECK(p != NULL, "apex_heap_alloc");
  return (uintptr_t)p & ~(uintptr_t)(4 * TU_MIB - 1);
}

/* The policy word of the numa_maps line of the mapping that starts at or holds `addr`. */
static void policy_of(uintptr_t addr, char *out, size_t size) {
  FILE *f = fopen("/proc/self/numa_maps", "r");
  out[0] = '\0';
  if (f == NULL) return;
  char line[1024];
  uintptr_t best = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long start;
    char policy[64];
    if (sscanf(line, "%lx %63s", &start, policy) != 2) continue;
    if (start <= addr && start >= best) { best = start; snprintf(out, size, "%s", policy); }
  }
  fclose(f);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const char *env = getenv("APEX_NUMA_NODES");
  size_t nodes = du_ctl_size("os.numa_nodes");
  if (env != NULL) CHECK(nodes == (size_t)atol(env), "os.numa_nodes = %zu, APEX_NUMA_NODES=%s", nodes, env);
  CHECK(nodes >= 1, "os.numa_nodes = 0");
  if (nodes < 2 || !pin(0) || !pin(1)) {
    printf("numa_override_per_node_cache: %zu node(s) or fewer than 2 usable CPUs: skipped\n", nodes);
    return 77;
  }
  CHECK(du_ctl_size("thread.numa_node") == 1 % nodes, "on CPU 1: node %zu", du_ctl_size("thread.numa_node"));
  pin(0);
  CHECK(du_ctl_size("thread.numa_node") == 0, "on CPU 0: node %zu", du_ctl_size("thread.numa_node"));
  apex_collect();                                 /* start with empty caches */

  apex_heap_t *h;
  uintptr_t sb0 = superblock_of_new_heap(&h);
  char policy[64];
  policy_of(sb0, policy, sizeof policy);
  printf("numa_override_per_node_cache: node 0 superblock %#lx policy %s\n", (unsigned long)sb0, policy);
  CHECK(policy[0] == '\0' || strcmp(policy, "prefer:0") == 0, "node-0 superblock has policy \"%s\"", policy);
  CHECK(apex_heap_destroy(h) == 0, "destroy");    /* sb0 -> node 0's cache */

  pin(1);
  uintptr_t sb1 = superblock_of_new_heap(&h);
  CHECK(sb1 != sb0, "a thread on node 1 reused node 0's cached superblock");
  CHECK(apex_heap_destroy(h) == 0, "destroy");    /* sb1 -> node 1's cache */

  pin(0);
  uintptr_t again0 = superblock_of_new_heap(&h);
  CHECK(again0 == sb0, "node 0 did not reuse its cached superblock (%#lx, cached %#lx)", (unsigned long)again0,
        (unsigned long)sb0);
  CHECK(apex_heap_destroy(h) == 0, "destroy");
  pin(1);
  uintptr_t again1 = superblock_of_new_heap(&h);
  CHECK(again1 == sb1, "node 1 did not reuse its cached superblock");
  CHECK(apex_heap_destroy(h) == 0, "destroy");
  apex_collect();
  printf("numa_override_per_node_cache: OK\n");
  return 0;
}
