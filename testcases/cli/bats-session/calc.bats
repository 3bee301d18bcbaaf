#!/usr/bin/env bats
# calc's command line, as a user meets it.

calc() { python3 "$TEST_SUITE_ROOT/program/calc.py" "$@"; }

@test "evaluates a file of statements" {
  printf 'let r = 2\nr * 3\n' > session.calc
  run calc session.calc
  [ "$status" -eq 0 ]
  [ "$output" = "6" ]
}

@test "exits 2 on a syntax error, naming the line" {
  printf '1 +\n' > broken.calc
  run calc broken.calc
  [ "$status" -eq 2 ]
  [[ "$output" == *"broken.calc:1:"* ]]
}

@test "exits 1 on division by zero" {
  run calc <<< '1 / 0'
  [ "$status" -eq 1 ]
  [[ "$output" == *"division by zero"* ]]
}

@test "accepts scientific notation" {
  run calc <<< '1e3 + 1'
  [ "$status" -eq 0 ]
  [ "$output" = "1001" ]
}
