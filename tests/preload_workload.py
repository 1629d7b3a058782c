"""Allocation-heavy, deterministic Python workload for tests/preload_programs.sh.

Run once with and once without LD_PRELOAD=libapexalloc.so; both runs must print exactly the same
lines. Builds dicts, lists, strings and bytes; round-trips JSON; hashes; sorts; runs a few threads
that allocate; and prints digests of everything. No output depends on addresses, hash seeds or timing.
"""
import hashlib
import json
import random
import sys
import threading
import zlib


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def build(rng, n):
    records = []
    for i in range(n):
        rec = {
            "id": i,
            "name": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 40))),
            "tags": [rng.randint(0, 1000) for _ in range(rng.randint(0, 20))],
            "score": rng.random(),
            "blob": "x" * rng.choice((1, 7, 64, 300, 5000)),
        }
        if i % 97 == 0:
            rec["big"] = list(range(rng.randint(1000, 20000)))
        records.append(rec)
    return records


def main():
    rng = random.Random(1234)
    records = build(rng, 12000)
    print("records", len(records), digest(records))

    # JSON round trip
    text = json.dumps(records)
    back = json.loads(text)
    assert back == records
    print("json", len(text), hashlib.sha256(text.encode()).hexdigest()[:16])

    # dicts: grow, shrink, rebuild
    index = {}
    for rec in records:
        index.setdefault(rec["name"][:3], []).append(rec["id"])
    for key in list(index)[::2]:
        del index[key]
    print("index", len(index), digest(sorted(index.items())))

    # strings and bytes
    words = [rec["name"] * (1 + rec["id"] % 5) for rec in records]
    joined = "|".join(words)
    parts = joined.split("|")
    assert parts == words
    big = (joined.encode() * 3)[: 5 * 1024 * 1024]
    comp = zlib.compress(big, 6)
    assert zlib.decompress(comp) == big
    print("strings", len(joined), len(comp), hashlib.md5(big).hexdigest())

    # hashing
    h = hashlib.sha512()
    for i in range(5000):
        h.update(("%d:%s" % (i, words[i % len(words)])).encode())
    print("sha512", h.hexdigest()[:32])
    print("blake2", hashlib.blake2b(big).hexdigest()[:32])

    # sorting
    by_score = sorted(records, key=lambda r: (r["score"], r["id"]))
    by_name = sorted(words)
    print("sorted", by_score[0]["id"], by_score[-1]["id"], by_name[0], by_name[-1][:20])

    # threads that allocate and exchange objects
    results = [None] * 4
    lock = threading.Lock()
    shared = []

    def work(k):
        local_rng = random.Random(k)
        acc = []
        for i in range(20000):
            acc.append({"k": k, "i": i, "s": str(local_rng.random()) * (i % 7)})
            if i % 100 == 0:
                with lock:
                    shared.append(acc[-50:])
        results[k] = digest(acc[::101])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("threads", results, sum(len(x) for x in shared))

    # sets and comprehensions, printed in a deterministic order
    s = {rec["name"] for rec in records}
    print("set", len(s), digest(sorted(s)))
    matrix = [[(i * j) % 17 for j in range(300)] for i in range(300)]
    print("matrix", sum(map(sum, matrix)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
