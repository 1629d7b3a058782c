#!/bin/sh
# Checks one variant of a Promela model exhaustively with spin (safety properties: assertions
# and invalid end states), in a directory of its own.
#   check.sh SPIN CC MODEL WORKDIR EXPECT [spin options such as -DLARGE ...]
# EXPECT is "pass" (the search must find no error), or the text of the assertion the search must
# violate, as spin prints it (e.g. "retired<1"): the variant models a protocol known to be wrong,
# and the test fails if spin does not find that violation.
set -eu
spin=$1 cc=$2 model=$3 work=$4 expect=$5
shift 5
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$spin" -a "$@" "$model" >spin.log 2>&1 || { cat spin.log; exit 1; }
"$cc" -O0 -DSAFETY -DMEMLIM=512 -w -o pan pan.c   # -O0: compiles in a tenth of the time
set +e
./pan >pan.log 2>&1
set -e
grep -E "assertion violated|errors:|states, stored|invalid end state" pan.log || true
if [ "$expect" = pass ]; then
  grep -q "errors: 0" pan.log && exit 0
  echo "FAIL: spin found an error in a variant that must pass; counterexample:" >&2
  "$spin" -t -p "$@" "$model" 2>&1 | tail -60 >&2
  exit 1
fi
if grep -qF "assertion violated ($expect)" pan.log; then
  echo "as expected: spin finds the violation of ($expect); counterexample steps:"
  "$spin" -t -p "$@" "$model" 2>&1 | grep -c "proc " || true
  exit 0
fi
echo "FAIL: spin did not find the expected violation of ($expect)" >&2
cat pan.log >&2
exit 1
