/*
 * Property: however a free-list link is poisoned, ApexAlloc never hands out the address the
 * attacker chose. Each attempt runs in a forked child, which
 *   1. allocates a few objects of one size and frees `depth + 1` of them (the victim is the one
 *      freed first, so `depth` chunks sit in front of it in the list),
 *   2. overwrites the victim's first word (its link) with an attacker value,
 *   3. allocates from the same size class, comparing every result with the attacker's address.
 * The parent asserts that the child either
 *   - was killed by SIGABRT after one line `apexalloc: <corrupted free list | write after free |
 *     double free> at 0x... (<size class>)` on stderr, or
 *   - finished normally without ever receiving the attacker's address (objects above the size
 *     classes have no free list to poison);
 * anything else (the address handed out, another signal, another message) fails the test.
 *
 *   poison_never_returns_attacker local    the victim is on its owner's local free list
 *                                          (links encoded with the block's key and the slot address)
 *   poison_never_returns_attacker remote   the victim was freed by another thread and waits in its
 *                                          block's remote list (links encoded the same way); the
 *                                          owner allocates until it has to collect that list
 *
 * Attacker values (never an address the request could legally get): addresses of a global, of
 * the stack, of a live chunk in the victim's block, of a live chunk of another size class, of a
 * chunk of another size class waiting in its own block's remote list, of a live huge object, of a foreign mmap page, of an
 * unmapped page; 0, 1, 0x1000, all ones, random values; and a global's address encoded as a
 * link is (target ^ (slot >> 4)) but without the secret key: what defeats an encoding by address
 * bits alone (glibc's safe-linking) once the attacker knows the slot's address.
 * Sizes go from 16 bytes through the multi-slice classes to a large object; depths 0, 1 and 5.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sec.h"

/* Only addresses the allocator may never hand out for this request: nothing free in the victim's
 * class (the victim, a free neighbour) is an attacker value, since getting it back is legal. */
enum attacker_kind {
  ATT_GLOBAL, ATT_STACK, ATT_LIVE_SAME_BLOCK, ATT_LIVE_OTHER_CLASS, ATT_REMOTE_OTHER_CLASS, ATT_HUGE, ATT_FOREIGN, ATT_UNMAPPED, ATT_ZERO, ATT_ONE, ATT_PAGE,
  ATT_ALL_ONES, ATT_RANDOM, ATT_SAFE_LINKING, ATT_COUNT
};
static const char *const kind_names[ATT_COUNT] = {
  "global", "stack", "live chunk, same block", "live chunk, other class",
  "remote-freed chunk, other class", "huge object", "foreign mmap page",
  "unmapped page", "0", "1", "0x1000", "all ones", "random", "global, encoded without the key",
};

static const size_t sizes[] = {16, 48, 128, 256, 1000, 4096, 20000, 100000, 300000};
static const int depths[] = {0, 1, 5};
#define RANDOM_REPEATS 8

_Alignas(64) static char g_target[4096];

/* ---- The child -------------------------------------------------------------------------- */

static void *const *g_to_free;
static size_t g_to_free_count;

static void *free_list_of_pointers(void *arg) {
  (void)arg;
  for (size_t i = 0; i < g_to_free_count; i++) apex_free(g_to_free[i]);
  return NULL;
}

static void free_on_other_thread(void *const *ptrs, size_t n) {
  g_to_free = ptrs;
  g_to_free_count = n;
  pthread_t t;
  if (pthread_create(&t, NULL, free_list_of_pointers, NULL) != 0) _exit(5);
  pthread_join(t, NULL);
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__attribute__((noreturn)) static void child(bool remote, size_t size, int depth, int kind, uint64_t seed) {
  enum { MAX_OBJECTS = 16 };
  void *obj[MAX_OBJECTS];
  int n = depth + 4;
  for (int i = 0; i < n; i++) {
    obj[i] = apex_malloc(size);
    if (obj[i] == NULL) _exit(5);
    memset(obj[i], 0x30 + i, size < 64 ? size : 64);
  }
  /* A chunk of another class, freed by another thread: it waits, tagged "remote", in its own
   * block's remote list. */
  void *other = apex_malloc(size == 16 ? 32 : 16);
  void *live_other = apex_malloc(size == 16 ? 32 : 16);
  void *huge = apex_malloc((size_t)8 << 20);
  char *foreign = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (other == NULL || live_other == NULL || huge == NULL || foreign == MAP_FAILED) _exit(5);
  munmap(foreign + 4096, 4096);                       /* foreign + 4096 is now unmapped */
  free_on_other_thread(&other, 1);
  _Alignas(16) char stack[64];
  memset(stack, 0, sizeof stack);

  char *victim = obj[0];
  uintptr_t target, value;                            /* what the attacker wants, what is written */
  switch (kind) {
    case ATT_GLOBAL:            target = (uintptr_t)g_target; break;
    case ATT_STACK:             target = (uintptr_t)stack; break;
    case ATT_LIVE_SAME_BLOCK:   target = (uintptr_t)obj[n - 1]; break;
    case ATT_LIVE_OTHER_CLASS:  target = (uintptr_t)live_other; break;
    case ATT_REMOTE_OTHER_CLASS: target = (uintptr_t)other; break;
    case ATT_HUGE:              target = (uintptr_t)huge; break;
    case ATT_FOREIGN:           target = (uintptr_t)foreign; break;
    case ATT_UNMAPPED:          target = (uintptr_t)foreign + 4096; break;
    case ATT_ZERO:              target = 0; break;
    case ATT_ONE:               target = 1; break;
    case ATT_PAGE:              target = 0x1000; break;
    case ATT_ALL_ONES:          target = UINTPTR_MAX; break;
    case ATT_RANDOM:            target = (uintptr_t)splitmix(&seed); break;
    default:                    target = (uintptr_t)g_target; break;
  }
  /* Encoded the way a link is, but without the block's secret key (what defeats an encoding by
   * address bits alone, such as glibc's safe-linking, once the slot's address has leaked). */
  value = kind == ATT_SAFE_LINKING ? target ^ ((uintptr_t)victim >> 4) : target;

  /* Free the victim first, then `depth` more in front of it. */
  if (remote) free_on_other_thread(obj, (size_t)depth + 1);
  else
    for (int i = 0; i <= depth; i++) apex_free(obj[i]);
  sec_poke(victim, 0, value);

  /* Allocate from the victim's class: past the victim for a local list; for a remote list, until
   * the block's local list is dry and the owner collects (the fresh area is carved in 8 KiB
   * steps, so a few multiples of 8 KiB worth of objects suffice). */
  size_t rounds = remote ? 4 * (65536 / size) + 64 : (size_t)depth + 8;
  for (size_t i = 0; i < rounds; i++) {
    void *q = apex_malloc(size);
    if (q == NULL) _exit(5);
    if ((uintptr_t)q == target || (uintptr_t)q == value) {
      sec_say("handed out the attacker's address %p at allocation %zu\n", q, i);
      _exit(4);
    }
  }
  _exit(0);
}

/* ---- The parent ------------------------------------------------------------------------- */

typedef struct {
  int aborted[3];        /* corrupted free list, write after free, double free */
  int completed;
  int failed;
} tally;

static const char *const whats[3] = {"corrupted free list", "write after free", "double free"};

static char *read_all(int fd) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL) abort();
  for (;;) {
    if (len + 1024 > cap) {
      cap *= 2;
      char *b = realloc(buf, cap);
      if (b == NULL) abort();
      buf = b;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r > 0) { len += (size_t)r; continue; }
    if (r < 0 && errno == EINTR) continue;
    break;
  }
  buf[len] = '\0';
  return buf;
}

static int run_attempt(bool remote, size_t size, int depth, int kind, uint64_t seed, tally *t,
                       const regex_t *line_re, int *shown) {
  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0) { perror("pipe"); exit(1); }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); exit(1); }
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    close(out[0]); close(out[1]); close(err[0]); close(err[1]);
    alarm(60);
    child(remote, size, depth, kind, seed);
  }
  close(out[1]);
  close(err[1]);
  /* The child writes at most a line to each; read stderr, then stdout. */
  char *errtext = read_all(err[0]);
  char *outtext = read_all(out[0]);
  close(out[0]);
  close(err[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}

  const char *problem = NULL;
  int what = -1;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) {
    regmatch_t m[2];
    if (regexec(line_re, errtext, 2, m, 0) == 0) {
      for (int i = 0; i < 3; i++)
        if ((size_t)(m[1].rm_eo - m[1].rm_so) == strlen(whats[i]) &&
            strncmp(errtext + m[1].rm_so, whats[i], strlen(whats[i])) == 0)
          what = i;
    }
    if (what < 0) problem = "aborted without the expected single line on stderr";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (errtext[0] != '\0') problem = "finished normally but wrote on stderr";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 4) {
    problem = "the allocator handed out the attacker-chosen address";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 5) {
    problem = "test setup failed in the child (allocation or thread creation)";
  } else if (WIFSIGNALED(status)) {
    problem = "killed by a signal other than SIGABRT";
  } else {
    problem = "unexpected exit status";
  }

  if (problem) {
    t->failed++;
    if ((*shown)++ < 12) {
      printf("FAIL [%s] size %zu, depth %d, attacker %s: %s\n", remote ? "remote" : "local", size, depth,
             kind_names[kind], problem);
      if (WIFSIGNALED(status)) printf("    signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
      else printf("    exit status %d\n", WEXITSTATUS(status));
      if (outtext[0]) printf("    stdout: %s", outtext);
      if (errtext[0]) printf("    stderr: %s", errtext);
    }
  } else if (what >= 0) {
    t->aborted[what]++;
  } else {
    t->completed++;
  }
  free(errtext);
  free(outtext);
  return problem == NULL;
}

int main(int argc, char **argv) {
  const char *v = SEC_VARIANT(argc, argv, "local", "remote");
  bool remote = strcmp(v, "remote") == 0;
  regex_t line_re;
  if (regcomp(&line_re,
              "^apexalloc: (corrupted free list|write after free|double free) at 0x[0-9a-f]+ "
              "\\((size class [0-9]+, [0-9]+ bytes|large object)\\)\n$",
              REG_EXTENDED) != 0) {
    fprintf(stderr, "regcomp failed\n");
    return 1;
  }
  tally per_kind[ATT_COUNT];
  memset(per_kind, 0, sizeof per_kind);
  int attempts = 0, failures = 0, shown = 0;
  uint64_t seed = 0x5eed;
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++)
      for (int k = 0; k < ATT_COUNT; k++)
        for (int r = 0; r < (k == ATT_RANDOM ? RANDOM_REPEATS : 1); r++) {
          attempts++;
          failures += !run_attempt(remote, sizes[s], depths[d], k, splitmix(&seed), &per_kind[k], &line_re, &shown);
        }

  printf("\nfree-list poisoning, %s lists: %d attempts, %d failures\n", v, attempts, failures);
  printf("  %-34s %9s %9s %9s %9s %7s\n", "attacker value", "corrupted", "w-a-free", "dbl-free", "no abort", "FAILED");
  for (int k = 0; k < ATT_COUNT; k++)
    printf("  %-34s %9d %9d %9d %9d %7d\n", kind_names[k], per_kind[k].aborted[0], per_kind[k].aborted[1],
           per_kind[k].aborted[2], per_kind[k].completed, per_kind[k].failed);
  regfree(&line_re);
  return failures == 0 ? 0 : 1;
}
