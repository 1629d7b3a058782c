"""python -m apexalloc [options] (script.py | -m module) [args...]

Runs a Python program with the interpreter's memory on ApexAlloc from its first line
(apexalloc.install() before the program is loaded).

Options:
  --stats               print ApexAlloc's statistics on stderr at exit
  --stats-format FMT    text (default) or json
  --heap-map FILE       write the heap map at exit (SVG, or JSON if FILE ends in .json)
  --domains LIST        comma-separated allocator domains (default raw,mem,obj)
"""
from __future__ import annotations

import atexit
import os
import runpy
import sys
from typing import List, Optional, Tuple

import apexalloc

USAGE = "usage: python -m apexalloc [--stats] [--stats-format text|json] " \
        "[--heap-map FILE] [--domains raw,mem,obj] (script.py | -m module) [args...]"


def _fail(message: str) -> int:
    print(f"{USAGE}\napexalloc: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    show_stats, stats_format, heap_map = False, "text", None
    domains: Tuple[str, ...] = apexalloc.DOMAINS
    while args and args[0].startswith("-") and args[0] != "-m":
        opt = args.pop(0)
        name, _, inline = opt.partition("=")

        def value() -> str:
            if inline:
                return inline
            if not args:
                raise SystemExit(_fail(f"{name} needs a value"))
            return args.pop(0)

        if opt in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        if opt == "--":
            break
        if name == "--stats":
            show_stats = True
        elif name == "--stats-format":
            stats_format = value()
            if stats_format not in ("text", "json"):
                return _fail(f"--stats-format {stats_format!r}: text or json")
        elif name == "--heap-map":
            heap_map = value()
        elif name == "--domains":
            domains = tuple(d for d in value().split(",") if d)
        else:
            return _fail(f"unknown option {opt}")
    if not args or (args[0] == "-m" and len(args) < 2):
        return _fail("no program to run")

    apexalloc.install(domains)

    def report() -> None:
        if show_stats:
            apexalloc.print_stats(sys.stderr, format=stats_format)
        if heap_map:
            apexalloc.heap_map(heap_map, format="json" if heap_map.endswith(".json") else "svg")
    atexit.register(report)

    if args[0] == "-m":
        module = args[1]
        sys.argv = [module] + args[2:]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = args[0]
        sys.argv = args
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
