#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS - builds the libFuzzer targets and runs each for
# an equal share of SECONDS (at least 1 s each).
#
# Targets: every tests/fuzz/fuzz_<name>.c. Each checks invariants, not only
# "no crash" (see the file headers), under AddressSanitizer and UBSan.
# `make FUZZ=1` builds them against all of the proxy's modules, compiled
# for the fuzzer in build/fuzz/, so a target never lists what it links.
# Nothing here uses the network.
#
# The seed corpus in tests/fuzz/corpus/<name>/ is copied to
# build/fuzz/corpus-<name>/ for every run, so tests/ is never written to.
# A crash or broken invariant leaves a reproducer under build/fuzz/artifacts/;
# re-run it with: build/fuzz/fuzz_<name> <reproducer>
#
# Exit status: 0 if every target ran clean, 1 otherwise (or if a package is
# missing and cannot be installed).
set -euo pipefail

cd "$(dirname "$0")/../.."

total=${1:-60}
if ! [[ $total =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS" >&2
    exit 2
fi
# clang, and the libFuzzer runtime that Debian 12's clang 14 links against.
pkgs=(clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
        echo "installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing packages; run: sudo apt-get install ${missing[*]}"
        exit 1
    fi
fi

out=build/fuzz
mkdir -p "$out/artifacts"
targets=()
for f in tests/fuzz/fuzz_*.c; do
    t=${f#tests/fuzz/fuzz_}
    targets+=("${t%.c}")
done
per=$((total / ${#targets[@]}))
((per >= 1)) || per=1

make --no-print-directory -j"$(nproc)" FUZZ=1 fuzz-bins

dict=()
[[ -f tests/fuzz/http.dict ]] && dict=(-dict=tests/fuzz/http.dict)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
results=()
for t in "${targets[@]}"; do
    corpus=$out/corpus-$t
    log=$out/fuzz_$t.log
    rm -rf "$corpus"
    mkdir -p "$corpus"
    cp tests/fuzz/corpus/"$t"/* "$corpus"/
    rm -f "$out/artifacts/$t"-*

    echo "fuzz: $t for ${per}s (log: $log)"
    rc=0
    "$out/fuzz_$t" "${dict[@]}" -max_total_time="$per" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
        "$corpus" >"$log" 2>&1 || rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [[ -n $execs ]] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    [[ -n $execs ]] || execs='?'
    if ((rc == 0)); then
        passed=$((passed + 1))
        results+=("$t: ok, $execs executions in ${per}s")
    else
        failed=$((failed + 1))
        repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        [[ -z $repro || $repro == /* ]] || repro=$PWD/$repro
        echo "---- $t failed (exit $rc); from $log:"
        grep -E 'INVARIANT VIOLATED|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error' \
            "$log" | head -n 5 || true
        # the input (hex and escaped) and where it was saved
        if grep -q '^SUMMARY' "$log"; then
            sed -n '/^SUMMARY/,/^Base64/p' "$log"
        else
            tail -n 25 "$log"
        fi
        echo "----"
        results+=("$t: FAILED (exit $rc), $execs executions; reproducer: ${repro:-none written}; re-run: $out/fuzz_$t ${repro:-<input>}")
    fi
done

for r in "${results[@]}"; do
    echo "$r"
done
echo "$passed passed, $failed failed"
((failed == 0))
