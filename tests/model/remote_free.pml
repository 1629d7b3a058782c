/*
 * remote_free.pml — a model of one block's remote-free protocol (core/remote.c), checked
 * exhaustively by spin: threads freeing the owner's chunks, the notify state, the owner's
 * collection, parking of full blocks, retirement, and an abandoned heap's collectors.
 *
 * One block of the owner heap: a small block of two chunks, or (LARGE) a large block of one chunk,
 * which is FULL from birth. Counts stand for the lists: `remote` chunks in the block's remote list,
 * `freelist` on its local free list, `held` handed out and still with the owner.
 *
 * Variants (spin -D...):
 *   LARGE         a large block (one chunk, one freer); otherwise a small block, two freers
 *   ABANDON       the owner thread exits (heap_abandon) and collectors (purge thread, claimers)
 *                 sweep the abandoned heap while the freers run; otherwise the owner ends with
 *                 apex_collect
 *   OLD_NOTIFY    the protocol before the fix: the notify state in its own byte, read by the freer
 *                 after the CAS that published its chunk; block_arm_full as a Dekker pair
 *   OLD_ABANDON   the abandoned-heap rules before the fix: `remote_pending` raised before the push,
 *                 and no scan after `abandoned` is published
 *   NO_TOUCH_CHECK  drop the "a freer never touches a retired block" assertion (so that the old
 *                 protocol's double retire is what the search reports)
 *   BATCH         one freeing thread gets every chunk handed out, holds them in its batch for the
 *                 block (they still count as used) and publishes the whole batch, whenever it
 *                 chooses and at the latest when it exits, with the same one CAS that publishes a
 *                 single chunk (core/remote.c: remote_publish)
 *   BATCH_NO_EXIT_FLUSH  the same, but the thread exits without publishing what it holds
 *
 * Properties (each assertion's text is what tests/model/check.sh looks for in spin's report):
 *   retired < 1      a block is retired at most once (checked before each retirement)
 *   retired == 0     a freer touches the block after its publishing CAS only while it is not retired
 *   !on_stack        a block is never pushed on the notified stack twice
 *   retired == 1     at the end (all freers done, the owner's or a collector's last sweep run)
 *                    the block is retired: no remote free was stranded, none counted twice
 */

#define QUEUED   0
#define FULL     1
#define NOTIFIED 2

#ifdef LARGE
#define CAPACITY 1
#define NFREERS  1
#else
#define CAPACITY 2
#define NFREERS  2
#endif
#define MAXOPS   4      /* owner slow-path allocations and apex_collect calls, each */

byte remote = 0;        /* chunks in b->remote (the list part of the word) */
byte state = QUEUED;    /* the notify state (the low bits of the word; OLD_NOTIFY: b->full_state) */
bool on_stack = false;  /* b is on owner->notified */
byte used = 0;          /* chunks handed out, including those in the remote list */
byte freelist = 0;      /* chunks on the local free list */
bool in_queue = false;  /* b is in its class queue */
bool in_full = false;   /* BLOCK_IN_FULL: parked out of the queue */
byte retired = 0;       /* times b was retired */
bool abandoned = false;
bool pending = false;   /* heap->remote_pending */
bool owner_gone = false;
byte freers_done = 0;
chan give = [NFREERS] of { bit };   /* 1: a chunk to free; 0: nothing for this freer */

#ifdef NO_TOUCH_CHECK
#define TOUCH skip
#else
#define TOUCH assert(retired == 0)
#endif

/* ---- Owner side (the owner thread, or a collector holding the heaps lock) ---- */

inline block_retire() {
  if
  :: state == NOTIFIED -> skip            /* deferred: the stack links it, popping retires it */
  :: else -> assert(retired < 1); retired++; in_queue = false; in_full = false; freelist = 0
  fi
}

inline block_free_slow() {
  if
  :: in_full ->
       in_full = false;
       atomic { if :: state == FULL -> state = QUEUED :: else -> skip fi };
#ifndef LARGE
       in_queue = true;
#endif
  :: else -> skip
  fi;
  if
  :: used == 0 -> block_retire()          /* as under retire_all: an empty block always goes */
  :: else -> skip
  fi
}

inline block_collect(n) {
  n = 0;
  if
  :: remote > 0 ->
       atomic { n = remote; remote = 0 };  /* keeps the state: only the list part is taken */
       used = used - n; freelist = freelist + n;
       if :: used == 0 || in_full -> block_free_slow() :: else -> skip fi
  :: else -> skip
  fi
}

inline block_arm_full(raced) {
#ifdef OLD_NOTIFY
  atomic { if :: state == QUEUED -> state = FULL :: else -> skip fi };
  if
  :: remote == 0 -> raced = false
  :: else ->
       atomic { if :: state == FULL -> state = QUEUED :: else -> skip fi };
       raced = true
  fi
#else
  atomic {
    if
    :: remote == 0 && state == QUEUED -> state = FULL; raced = false
    :: remote == 0 && state != QUEUED -> raced = false
    :: remote > 0 -> raced = true
    fi
  }
#endif
}

inline heap_collect_notified(n, raced) {
  if
  :: on_stack ->
       on_stack = false;                   /* exchange: the stack is emptied */
       state = QUEUED;                     /* block_set_queued */
       block_collect(n);
       if
       :: n == 0 && used == 0 -> block_free_slow()
       :: n == 0 && used > 0 && in_full ->
            block_arm_full(raced);
            if :: raced -> block_collect(n) :: else -> skip fi
       :: else -> skip
       fi
  :: else -> skip
  fi
}

/* heap_collect_all_remote + heap_retire_empty: every block that is in use (not retired). */
inline collect_all(n, raced) {
  heap_collect_notified(n, raced);
  if :: retired == 0 -> block_collect(n) :: else -> skip fi;
  if :: retired == 0 && used == 0 -> block_retire() :: else -> skip fi
}

/* heap_malloc_slow's walk of the class queue, for this block. */
inline malloc_slow(n, raced) {
  heap_collect_notified(n, raced);
  if
  :: retired == 0 && in_queue ->
       if :: freelist == 0 -> block_collect(n) :: else -> skip fi;
       if
       :: retired > 0 -> skip              /* collecting emptied it: gone */
       :: retired == 0 && freelist > 0 -> freelist--; used++; held++
       :: retired == 0 && freelist == 0 ->
            block_arm_full(raced);
            if
            :: raced ->
                 block_collect(n);
                 if :: retired == 0 && freelist > 0 -> freelist--; used++; held++ :: else -> skip fi
            :: else -> in_queue = false; in_full = true
            fi
       fi
  :: else -> skip                          /* it would start a new block */
  fi
}

proctype Owner() {
  byte held, given = 0, ops = 0, n;
  bool raced;
  /* The owner allocates every chunk of the block. */
  used = CAPACITY; held = CAPACITY;
#ifdef LARGE
  state = FULL;                            /* a large block is always FULL */
#else
  in_queue = true;
#endif
  do
  :: held > 0 && given < NFREERS -> give!1; held--; given++
  :: held > 0 ->                           /* a local free (heap_free_local) */
       held--; used--; freelist++;
       if :: used == 0 || in_full -> block_free_slow() :: else -> skip fi
#ifndef LARGE
  :: retired == 0 && in_queue && freelist > 0 -> freelist--; used++; held++   /* apex_malloc */
#endif
  :: ops < MAXOPS -> ops++;
#ifdef LARGE
       heap_collect_notified(n, raced)     /* heap_malloc_large */
#else
       malloc_slow(n, raced)
#endif
  :: ops < MAXOPS -> ops++; collect_all(n, raced)   /* apex_collect */
  :: held == 0 -> break
  od;
  do :: given < NFREERS -> give!0; given++ :: else -> break od;
#ifdef ABANDON
  /* heap_abandon */
  collect_all(n, raced);
  abandoned = true;
#ifndef OLD_ABANDON
  collect_all(n, raced);                   /* the scan after publishing `abandoned` */
#endif
  owner_gone = true                        /* the heaps lock is released */
#else
  freers_done == NFREERS;
  collect_all(n, raced);                   /* apex_collect */
  assert(retired == 1)
#endif
}

/* A thread freeing one chunk it got from the owner (remote_free). The claim of an abandoned heap
 * is left out: its trylock may always fail, and then the chunk takes this path. */
proctype Freer() {
  bit got;
  byte seen;
  give?got;
  if
  :: got == 1 ->
#ifdef OLD_ABANDON
       if :: abandoned -> pending = true :: else -> skip fi;
#endif
#ifdef OLD_NOTIFY
       remote++;                           /* the CAS publishing the chunk */
       TOUCH; seen = state;                /* then: load full_state */
       if
       :: seen == FULL ->
            atomic { if :: state == FULL -> state = NOTIFIED; seen = NOTIFIED :: else -> seen = QUEUED fi };
            if :: seen == NOTIFIED -> TOUCH; atomic { assert(!on_stack); on_stack = true } :: else -> skip fi
       :: else -> skip
       fi;
#else
       /* One CAS publishes the chunk and moves FULL to NOTIFIED. */
       atomic { seen = state; remote++; if :: state == FULL -> state = NOTIFIED :: else -> skip fi };
       if
       :: seen == FULL -> TOUCH; atomic { assert(!on_stack); on_stack = true }   /* notify_owner */
       :: else -> skip                     /* b is not touched again */
       fi;
#endif
#ifndef OLD_ABANDON
       if :: abandoned -> pending = true :: else -> skip fi;
#endif
       skip
  :: else -> skip
  fi;
  freers_done++
}

#ifdef BATCH
/* One batch's publication (remote_publish): the CAS adds the whole chain to the list and moves
 * FULL to NOTIFIED, exactly as for one chunk; then, as for one chunk, only a FULL it found lets
 * the thread touch the block again, and an abandoned heap gets its flag. */
inline publish_batch(held, seen) {
  atomic { seen = state; remote = remote + held; if :: state == FULL -> state = NOTIFIED :: else -> skip fi };
  held = 0;
  if
  :: seen == FULL -> TOUCH; atomic { assert(!on_stack); on_stack = true }   /* notify_owner */
  :: else -> skip
  fi;
  if :: abandoned -> pending = true :: else -> skip fi
}

/* The thread that frees every chunk the owner hands out, batching them (remote_free). It
 * publishes at any moment (its batch is full, a free for another block needs the slot, its
 * allocation slow path, apex_collect) and what is left when it exits (heap_thread_done). */
proctype BatchingFreer() {
  bit got;
  byte seen, held = 0, received = 0;
  do
  :: received < NFREERS -> give?got; received++; if :: got == 1 -> held++ :: else -> skip fi
  :: held > 0 -> publish_batch(held, seen)
  :: received == NFREERS -> break
  od;
#ifndef BATCH_NO_EXIT_FLUSH
  if :: held > 0 -> publish_batch(held, seen) :: else -> skip fi;
#endif
  freers_done = NFREERS
}
#endif

#ifdef ABANDON
/* Whoever holds the heaps lock for an abandoned heap: the purge thread, collect_abandoned, and in
 * the end their next pass after the freers are done. */
proctype Collector() {
  byte n;
  bool raced;
  owner_gone;
  do
  :: pending || on_stack -> pending = false; collect_all(n, raced)
  :: freers_done == NFREERS -> break
  od;
  if :: pending || on_stack -> pending = false; collect_all(n, raced) :: else -> skip fi;
  assert(retired == 1)
}
#endif

init {
  atomic {
    run Owner();
#ifdef BATCH
    run BatchingFreer();
#else
    run Freer();
#if NFREERS > 1
    run Freer();
#endif
#endif
#ifdef ABANDON
    run Collector();
#endif
  }
}
