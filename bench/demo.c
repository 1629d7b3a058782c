/*
 * demo.c — ApexAlloc at work in one short run, for a first look.
 *
 * A small multi-threaded "server": worker threads build and tear down requests of mixed sizes,
 * hand some of their objects to the next worker (so they are freed by a thread that did not
 * allocate them), and some threads exit and are replaced while their objects are still alive.
 * The demo prints how long each phase took and what the allocator holds after each one, then
 * shows one of the security checks at work in a child process.
 *
 * Linked against libapexalloc.so, so malloc/free here are ApexAlloc's as well as apex_*.
 */
#define _GNU_SOURCE
#include <apexalloc.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 4
#define SLOTS 4096

typedef struct { unsigned char *p; size_t n; } object_t;
static object_t g_handoff[WORKERS][SLOTS];   /* worker i leaves objects for worker i+1 */
static pthread_mutex_t g_lock[WORKERS];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t next_random(uint64_t *s) {
  *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
  return *s;
}

static size_t request_size(uint64_t r) {
  switch (r % 16) {
    case 0: return 4096 + r % 60000;           /* buffers */
    case 1: return r % 7 == 0 ? 300000 + r % 3000000 : 1024 + r % 8192;  /* rare big ones */
    default: return 8 + r % 500;               /* the bulk: small objects */
  }
}

static void fill(object_t o) { memset(o.p, (int)(o.n & 0xff), o.n < 256 ? o.n : 256); }

static int check(object_t o) {
  for (size_t i = 0; i < (o.n < 256 ? o.n : 256); i++)
    if (o.p[i] != (unsigned char)(o.n & 0xff)) return 0;
  return 1;
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1) ^ (uint64_t)time(NULL);
  object_t local[256] = {{0}};
  for (int i = 0; i < 200000; i++) {
    uint64_t r = next_random(&seed);
    object_t o = { NULL, request_size(r) };
    o.p = malloc(o.n);
    if (o.p == NULL) { fprintf(stderr, "demo: out of memory\n"); exit(1); }
    fill(o);
    size_t k = (r >> 20) % 256;
    if (local[k].p) {
      if (!check(local[k])) { fprintf(stderr, "demo: corrupted object\n"); exit(1); }
      free(local[k].p);
    }
    local[k] = o;
    if ((r >> 40) % 8 == 0) {
      /* Give this object to the next worker's mailbox, and free one from our own mailbox: it was
       * allocated by the previous worker (or by a thread that has exited since). */
      int to = (id + 1) % WORKERS;
      size_t give = (r >> 28) % SLOTS, take = (r >> 44) % SLOTS;
      pthread_mutex_lock(&g_lock[to]);
      object_t displaced = g_handoff[to][give];
      g_handoff[to][give] = local[k];
      pthread_mutex_unlock(&g_lock[to]);
      local[k].p = NULL;
      pthread_mutex_lock(&g_lock[id]);
      object_t received = g_handoff[id][take];
      g_handoff[id][take].p = NULL;
      pthread_mutex_unlock(&g_lock[id]);
      object_t gone[2] = { displaced, received };
      for (int j = 0; j < 2; j++) {
        if (gone[j].p == NULL) continue;
        if (!check(gone[j])) { fprintf(stderr, "demo: corrupted object\n"); exit(1); }
        free(gone[j].p);
      }
    }
  }
  for (int k = 0; k < 256; k++) free(local[k].p);
  return NULL;
}

static void print_stats(const char *when, double seconds) {
  apex_stats_t s;
  apex_stats_get(&s, sizeof s);
  printf("  %-34s %7.3f s | allocated %8.2f MiB | mapped %8.2f MiB (peak %8.2f) | "
         "superblocks %3zu | heaps %2zu (%zu abandoned) | remote frees %zu\n",
         when, seconds, s.allocated / 1048576.0, s.mapped / 1048576.0, s.mapped_peak / 1048576.0,
         s.superblocks, s.heaps, s.heaps_abandoned, s.remote_frees);
}

static void run_generation(void) {
  pthread_t t[WORKERS];
  for (int i = 0; i < WORKERS; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
}

int main(void) {
  printf("ApexAlloc %s demo: %d worker threads, 200000 requests each, mixed sizes 8 B .. 3 MiB,\n"
         "one object in eight handed to another thread and freed there.\n\n",
         apex_version_string(), WORKERS);
  for (int i = 0; i < WORKERS; i++) pthread_mutex_init(&g_lock[i], NULL);
  print_stats("start", 0.0);

  for (int gen = 1; gen <= 3; gen++) {
    double t0 = now();
    run_generation();                          /* threads exit; hand-off objects stay alive */
    char label[64];
    snprintf(label, sizeof label, "generation %d (threads exited)", gen);
    print_stats(label, now() - t0);
  }

  double t0 = now();
  size_t live = 0;
  for (int w = 0; w < WORKERS; w++)
    for (int s = 0; s < SLOTS; s++)
      if (g_handoff[w][s].p) {
        if (!check(g_handoff[w][s])) { fprintf(stderr, "demo: corrupted object\n"); return 1; }
        free(g_handoff[w][s].p);
        g_handoff[w][s].p = NULL;
        live++;
      }
  char label[64];
  snprintf(label, sizeof label, "freed %zu hand-off objects", live);
  print_stats(label, now() - t0);

  printf("\nSecurity check: a child process frees the same 48-byte object twice.\n");
  fflush(stdout);
  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    void *p = apex_malloc(48);                  /* apex_* calls: the compiler cannot elide them */
    apex_free(p);
    apex_free(p);                               /* ApexAlloc aborts here */
    _exit(0);
  }
  close(pipefd[1]);
  char line[256] = {0};
  ssize_t n = read(pipefd[0], line, sizeof line - 1);
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status))
    printf("  the child said: \"%s\"\n  and was stopped by signal %d (%s).\n", line,
           WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    printf("  the child exited normally: the double free was NOT caught!\n");
  return WIFSIGNALED(status) ? 0 : 1;
}
