/*
 * bigint.c — integer factoring with heap-allocated big integers: a long-running single-threaded
 * program whose allocations are many, small (8..40 B) and short-lived, like a computer-algebra or
 * cryptography program written in the "every operation returns a new number" style.
 *
 * Numbers are arrays of 32-bit digits behind a small header, allocated to their exact length. The
 * program builds semiprimes p*q from primes p, q of 22..28 bits (found by trial division) and
 * factors each with Pollard's rho (Floyd's cycle finding, x -> x^2 + c mod n, gcd taken every
 * 32 steps on the running product of |x - y|). Every multiplication, subtraction and division
 * (schoolbook long division, Knuth's algorithm D) allocates its result and the caller frees the
 * operands it no longer needs, so a step allocates and frees about a dozen tiny objects. Each
 * factor found is checked against the p and q the number was made from.
 *
 * usage: bench_bigint [numbers=250]
 * Prints one line; exits 2 on a wrong factor, 3 on an allocation failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

typedef struct {
  uint32_t n;    /* digits in use; no leading zero digit (zero has n == 0) */
  uint32_t d[];  /* little-endian base 2^32 */
} big_t;

static long g_allocs;

static big_t *big_alloc(uint32_t n) {
  big_t *b = malloc(sizeof *b + (size_t)n * sizeof b->d[0]);
  if (b == NULL) {
    fprintf(stderr, "bigint: malloc failed\n");
    exit(3);
  }
  g_allocs++;
  b->n = n;
  return b;
}

static big_t *big_trim(big_t *b) {
  while (b->n > 0 && b->d[b->n - 1] == 0) b->n--;
  return b;
}

static big_t *big_from_u64(uint64_t x) {
  big_t *b = big_alloc(2);
  b->d[0] = (uint32_t)x;
  b->d[1] = (uint32_t)(x >> 32);
  return big_trim(b);
}

static uint64_t big_to_u64(const big_t *b) {
  uint64_t x = 0;
  for (uint32_t i = b->n; i-- > 0;) x = (x << 32) | b->d[i];
  return x;
}

static int big_cmp(const big_t *a, const big_t *b) {
  if (a->n != b->n) return a->n < b->n ? -1 : 1;
  for (uint32_t i = a->n; i-- > 0;)
    if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
  return 0;
}

static big_t *big_mul(const big_t *a, const big_t *b) {
  big_t *r = big_alloc(a->n + b->n);
  memset(r->d, 0, (size_t)r->n * sizeof r->d[0]);
  for (uint32_t i = 0; i < a->n; i++) {
    uint64_t carry = 0;
    for (uint32_t j = 0; j < b->n; j++) {
      uint64_t t = (uint64_t)a->d[i] * b->d[j] + r->d[i + j] + carry;
      r->d[i + j] = (uint32_t)t;
      carry = t >> 32;
    }
    r->d[i + b->n] = (uint32_t)carry;
  }
  return big_trim(r);
}

static big_t *big_add_small(const big_t *a, uint32_t c) {
  big_t *r = big_alloc(a->n + 1);
  uint64_t carry = c;
  for (uint32_t i = 0; i < a->n; i++) {
    uint64_t t = (uint64_t)a->d[i] + carry;
    r->d[i] = (uint32_t)t;
    carry = t >> 32;
  }
  r->d[a->n] = (uint32_t)carry;
  return big_trim(r);
}

/* |a - b| */
static big_t *big_absdiff(const big_t *a, const big_t *b) {
  if (big_cmp(a, b) < 0) {
    const big_t *t = a;
    a = b;
    b = t;
  }
  big_t *r = big_alloc(a->n);
  int64_t borrow = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    int64_t t = (int64_t)a->d[i] - (i < b->n ? (int64_t)b->d[i] : 0) - borrow;
    borrow = t < 0;
    r->d[i] = (uint32_t)(t + (borrow ? ((int64_t)1 << 32) : 0));
  }
  return big_trim(r);
}

static big_t *big_copy(const big_t *a) {
  big_t *r = big_alloc(a->n);
  memcpy(r->d, a->d, (size_t)a->n * sizeof a->d[0]);
  return r;
}

static unsigned leading_zeros32(uint32_t x) {
  unsigned n = 0;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    n++;
  }
  return n;
}

/* a mod m (m != 0). Long division in base 2^32 after Knuth (TAOCP vol. 2, 4.3.1, algorithm D):
 * the quotient is built too, in its own allocation, as a general-purpose division would. */
static big_t *big_mod(const big_t *a, const big_t *m) {
  if (big_cmp(a, m) < 0) return big_copy(a);
  if (m->n == 1) {
    uint64_t rem = 0;
    for (uint32_t i = a->n; i-- > 0;) rem = ((rem << 32) | a->d[i]) % m->d[0];
    return big_from_u64(rem);
  }
  uint32_t n = m->n, k = a->n - m->n; /* quotient has k + 1 digits */
  unsigned s = leading_zeros32(m->d[n - 1]);
  big_t *v = big_alloc(n), *u = big_alloc(a->n + 1), *q = big_alloc(k + 1);
  for (uint32_t i = n; i-- > 0;)
    v->d[i] = (m->d[i] << s) | (s && i ? m->d[i - 1] >> (32 - s) : 0);
  u->d[a->n] = s ? a->d[a->n - 1] >> (32 - s) : 0;
  for (uint32_t i = a->n; i-- > 0;)
    u->d[i] = (a->d[i] << s) | (s && i ? a->d[i - 1] >> (32 - s) : 0);
  for (uint32_t j = k + 1; j-- > 0;) {
    uint64_t top = ((uint64_t)u->d[j + n] << 32) | u->d[j + n - 1];
    uint64_t qhat = top / v->d[n - 1], rhat = top % v->d[n - 1];
    while (qhat >> 32 || qhat * v->d[n - 2] > ((rhat << 32) | u->d[j + n - 2])) {
      qhat--;
      rhat += v->d[n - 1];
      if (rhat >> 32) break;
    }
    int64_t borrow = 0, t;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t p = qhat * v->d[i];
      t = (int64_t)u->d[i + j] - borrow - (int64_t)(p & 0xFFFFFFFFu);
      u->d[i + j] = (uint32_t)t;
      borrow = (int64_t)(p >> 32) - (t >> 32);
    }
    t = (int64_t)u->d[j + n] - borrow;
    u->d[j + n] = (uint32_t)t;
    if (t < 0) { /* qhat was one too big: add v back */
      qhat--;
      uint64_t carry = 0;
      for (uint32_t i = 0; i < n; i++) {
        uint64_t sum = (uint64_t)u->d[i + j] + v->d[i] + carry;
        u->d[i + j] = (uint32_t)sum;
        carry = sum >> 32;
      }
      u->d[j + n] += (uint32_t)carry;
    }
    q->d[j] = (uint32_t)qhat;
  }
  big_t *r = big_alloc(n);
  for (uint32_t i = 0; i < n; i++) r->d[i] = (u->d[i] >> s) | (s ? u->d[i + 1] << (32 - s) : 0);
  free(q);
  free(u);
  free(v);
  return big_trim(r);
}

/* Euclid's algorithm; every remainder is a new number. */
static big_t *big_gcd(const big_t *a0, const big_t *b0) {
  big_t *a = big_copy(a0), *b = big_copy(b0);
  while (b->n != 0) {
    big_t *r = big_mod(a, b);
    free(a);
    a = b;
    b = r;
  }
  free(b);
  return a;
}

/* x^2 + c mod n */
static big_t *rho_step(const big_t *x, uint32_t c, const big_t *n) {
  big_t *sq = big_mul(x, x);
  big_t *sum = big_add_small(sq, c);
  free(sq);
  big_t *r = big_mod(sum, n);
  free(sum);
  return r;
}

/* A non-trivial factor of n (odd composite), by Pollard's rho. */
static uint64_t factor(const big_t *n) {
  for (uint32_t c = 1;; c++) {
    big_t *x = big_from_u64(2), *y = big_from_u64(2), *acc = big_from_u64(1);
    for (long step = 1;; step++) {
      big_t *t = rho_step(x, c, n);
      free(x);
      x = t;
      t = rho_step(y, c, n);
      free(y);
      y = rho_step(t, c, n);
      free(t);
      big_t *diff = big_absdiff(x, y);
      big_t *prod = big_mul(acc, diff);
      free(diff);
      free(acc);
      acc = big_mod(prod, n);
      free(prod);
      if (step % 32 == 0 || acc->n == 0) {
        big_t *g = big_gcd(acc, n);
        uint64_t f = big_to_u64(g);
        int done = big_cmp(g, n) != 0 && f != 1;
        int retry = big_cmp(g, n) == 0;
        free(g);
        if (done || retry) {
          free(x);
          free(y);
          free(acc);
          if (done) return f;
          break; /* the cycle closed on n itself: try another c */
        }
      }
    }
  }
}

static int is_prime(uint64_t p) {
  if (p < 2 || p % 2 == 0) return p == 2;
  for (uint64_t d = 3; d * d <= p; d += 2)
    if (p % d == 0) return 0;
  return 1;
}

static uint64_t random_prime(uint64_t *rng) {
  unsigned bits = 22 + (unsigned)(rng_next(rng) % 7);
  uint64_t p = ((uint64_t)1 << (bits - 1)) | (rng_next(rng) & (((uint64_t)1 << (bits - 1)) - 1)) | 1;
  while (!is_prime(p)) p += 2;
  return p;
}

int main(int argc, char **argv) {
  long numbers = argc > 1 ? atol(argv[1]) : 250;
  if (numbers < 1) {
    fprintf(stderr, "usage: %s [numbers>=1]\n", argv[0]);
    return 1;
  }
  uint64_t rng = 0x243F6A8885A308D3ULL;
  double t0 = now_sec();
  for (long i = 0; i < numbers; i++) {
    uint64_t p = random_prime(&rng), q = random_prime(&rng);
    big_t *bp = big_from_u64(p), *bq = big_from_u64(q);
    big_t *n = big_mul(bp, bq);
    free(bp);
    free(bq);
    uint64_t f = p == q ? p : factor(n);
    if (f != p && f != q) {
      fprintf(stderr, "bigint: factor %llu of %llu * %llu is wrong\n", (unsigned long long)f,
              (unsigned long long)p, (unsigned long long)q);
      return 2;
    }
    free(n);
  }
  double elapsed = now_sec() - t0;
  printf("bigint: factored %ld semiprimes, %ld numbers allocated, time=%.3fs\n", numbers, g_allocs, elapsed);
  return 0;
}
