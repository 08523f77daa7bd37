#!/bin/sh
# Kiln test task: the default CMD of the kiln-test/busybox images
# (built by scripts/build-test-images.sh; runs under busybox sh, no jq).
#
# Inputs (set by the Kiln task runtime):
#   PAYLOAD_FILE  path of a file holding the task payload: a JSON object string
#   CONFIG_FILE   path of the code's config file (only read when asked to)
#   TASK_ID, TASK_DIR
#   STDIN         the payload again (only read when asked to)
#
# Behaviour, in this order (keys are looked up with sed/grep, so keep the
# payload flat; spaces after the colon are fine; a missing key = not asked):
#   1. always: print the payload file content as is, then a newline
#   "stderr":"TEXT"  print TEXT to stderr (\n, \t, \" and \\ escapes honoured)
#   "env":"NAME"     print NAME=<value of env var NAME> (empty if unset)
#   "config":true    print "config: " followed by the contents of $CONFIG_FILE
#   "stdin":true     print "stdin: " followed by everything read from STDIN
#   "id":true        print "id: " followed by the output of `id`
#   "lines":N        print "line 1" ... "line N"
#   "interval":S     with "lines": sleep S seconds (fractions ok) between lines
#   "sleep":N        sleep N seconds (fractions ok) after all the printing above
#   "exit":N         exit with code N (default 0)
#
# On SIGTERM/SIGINT the script stops at once (even while sleeping), prints
# "run.sh: terminated" to stderr and exits 143, so `docker stop` is prompt.
#
# Example: {"stderr":"oops", "lines":3, "interval":0.1, "exit":3}

CHILD=""
# shellcheck disable=SC2317 # invoked by the trap
on_term() {
  [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null
  echo "run.sh: terminated" >&2
  exit 143
}
trap on_term TERM INT

# Interruptible sleep: the trap fires during `wait`, not during a foreground sleep.
ksleep() {
  sleep "$1" &
  CHILD=$!
  wait "$CHILD"
  CHILD=""
}

PAYLOAD=""
if [ -n "${PAYLOAD_FILE:-}" ] && [ -r "$PAYLOAD_FILE" ]; then
  cat "$PAYLOAD_FILE"
  # One line, so the sed expressions below see the whole object.
  PAYLOAD=$(tr '\n\r' '  ' < "$PAYLOAD_FILE")
elif [ -n "${PAYLOAD_FILE:-}" ]; then
  echo "run.sh: cannot read PAYLOAD_FILE=$PAYLOAD_FILE" >&2
fi
echo

# json_str KEY -> raw (still escaped) string value of "KEY":"..."
json_str() {
  printf '%s\n' "$PAYLOAD" |
    sed -nE 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"(([^"\\]|\\.)*)".*/\1/p'
}
# json_num KEY -> number value of "KEY":N (integer or decimal, maybe negative)
json_num() {
  printf '%s\n' "$PAYLOAD" |
    sed -nE 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*(-?[0-9]+(\.[0-9]+)?).*/\1/p'
}
# json_true KEY -> success when "KEY":true
json_true() {
  printf '%s\n' "$PAYLOAD" | grep -Eq '"'"$1"'"[[:space:]]*:[[:space:]]*true'
}
# Minimal JSON unescape: \" \/ then printf %b for \n \t \\ .
json_unescape() {
  printf '%b' "$(printf '%s' "$1" | sed -e 's/\\"/"/g' -e 's/\\\//\//g')"
}

if json_str stderr | grep -q .; then
  json_unescape "$(json_str stderr)" >&2
  echo >&2
fi

NAME=$(json_str env)
if [ -n "$NAME" ]; then
  case "$NAME" in
    [A-Za-z_]*)
      if printf '%s' "$NAME" | grep -Eq '^[A-Za-z_][A-Za-z0-9_]*$'; then
        # A fresh sh sees only the exported environment, not our variables
        # (busybox has no printenv applet).
        # shellcheck disable=SC2016
        printf '%s=%s\n' "$NAME" "$(sh -c 'eval "printf %s \"\${$1-}\""' _ "$NAME")"
      else
        echo "run.sh: invalid env var name: $NAME" >&2
      fi
      ;;
    *) echo "run.sh: invalid env var name: $NAME" >&2 ;;
  esac
fi

if json_true config; then
  CONFIG_TEXT=""
  if [ -n "${CONFIG_FILE:-}" ] && [ -r "$CONFIG_FILE" ]; then
    CONFIG_TEXT=$(cat "$CONFIG_FILE")
  fi
  # $(...) drops trailing newlines: exactly one newline ends the output.
  printf 'config: %s\n' "$CONFIG_TEXT"
fi

if json_true stdin; then
  STDIN_TEXT=$(cat)
  printf 'stdin: %s\n' "$STDIN_TEXT"
fi

if json_true id; then
  echo "id: $(id)"
fi

LINES_N=$(json_num lines)
if [ -n "$LINES_N" ]; then
  LINES_N=${LINES_N%%.*}
  INTERVAL=$(json_num interval)
  i=1
  while [ "$i" -le "$LINES_N" ]; do
    echo "line $i"
    if [ -n "$INTERVAL" ] && [ "$i" -lt "$LINES_N" ]; then
      ksleep "$INTERVAL"
    fi
    i=$((i + 1))
  done
fi

SLEEP_S=$(json_num sleep)
if [ -n "$SLEEP_S" ]; then
  ksleep "$SLEEP_S"
fi

EXIT_CODE=$(json_num exit)
EXIT_CODE=${EXIT_CODE%%.*}
exit "${EXIT_CODE:-0}"
