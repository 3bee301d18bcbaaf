#!/bin/sh
# calc's command line, checked the way shell test scripts of C libraries are:
# one TAP point per check, diagnostics in a YAML block when one fails.
calc="python3 $TEST_SUITE_ROOT/program/calc.py"
n=0

# check DESCRIPTION INPUT EXPECTED [DIRECTIVE]
check() {
    n=$((n + 1))
    got=$(printf '%s\n' "$2" | $calc 2>&1)
    if [ "$got" = "$3" ]; then
        echo "ok $n - $1${4:+ # $4}"
    else
        echo "not ok $n - $1${4:+ # $4}"
        echo "  ---"
        echo "  message: calc printed something else"
        echo "  input: '$2'"
        echo "  expected: '$3'"
        echo "  got: '$got'"
        echo "  ..."
    fi
}

echo "TAP version 14"
echo "1..6"
check "adds" "1 + 2" "3"
check "binds precedence tighter for *" "1 + 2 * 3" "7"
check "raises right to left" "2 ^ 3 ^ 2" "512"
# Python's rule (the sign of the divisor) is the goal; calc 1.x follows C.
check "takes the divisor's sign in %" "-7 % 3" "2" "TODO calc follows C's fmod before 2.0"
if [ -w /dev/full ]; then
    n=$((n + 1))
    if printf '1\n' | $calc > /dev/full 2>/dev/null; then
        echo "not ok $n - reports a full disk"
    else
        echo "ok $n - reports a full disk"
    fi
else
    n=$((n + 1))
    echo "ok $n - reports a full disk # SKIP no /dev/full here"
fi
# The functions, as a nested subtest (TAP 14): indented, then their parent point.
echo "# Subtest: functions"
echo "    1..3"
for case in "1 sqrt(16) 4" "2 abs(-2.5) 2.5" "3 floor(2.7) 2"; do
    set -- $case
    got=$(printf '%s\n' "$2" | $calc 2>&1)
    if [ "$got" = "$3" ]; then echo "    ok $1 - $2 is $3"; else echo "    not ok $1 - $2 is $3 (got $got)"; fi
done
n=$((n + 1))
echo "ok $n - functions"
