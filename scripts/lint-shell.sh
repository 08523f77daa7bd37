#!/usr/bin/env bash
# Part of `npm run lint`: shellcheck on every shell script of the repository, i.e. everything under
# scripts/ (sourced helpers included) and docker/ that is a *.sh file or starts with a sh/bash
# shebang, and .ci/run. Settings: .shellcheckrc. `npm test` installs shellcheck when it is missing
# (scripts/lib.sh need_debian_package); elsewhere: apt-get install shellcheck.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "[lint] shellcheck is not installed (apt-get install shellcheck; npm test installs it)" >&2
  exit 1
fi

files=()
while IFS= read -r -d '' file; do
  if [[ $file == *.sh ]] || head -n 1 "$file" | grep -qE '^#! ?(/usr)?/bin/(env +)?(ba)?sh([[:space:]]|$)'; then
    files+=("$file")
  fi
done < <(find scripts .ci docker -type f -print0 | sort -z)

((${#files[@]} > 0)) || { echo "[lint] no shell scripts found" >&2; exit 1; }
shellcheck "${files[@]}"
