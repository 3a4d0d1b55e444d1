#!/usr/bin/env bash
# Code, comments and docs speak of the product as it is: no ticket numbers, no work log, no
# file outside the repository, no broken relative link (CONTRIBUTING.md, "Code, comments and
# docs"). Greps the repository's text files (tracked and new ones, .gitignore respected; every
# file outside the build directories where there is no git); prints one line per finding and
# fails on any.
set -euo pipefail
cd "$(dirname "$0")/.."

# Generated data, binary files and third-party text are not prose; this file names the patterns.
skip='\.(png|svg|json|csv|ttf|lock|proptest-regressions|wasm)$|^LICENSE$|^fuzz/corpus/|^adapters/ledger/tests/golden/|^scripts/check-docs\.sh$'

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  list=$(git ls-files -co --exclude-standard)
else
  list=$(find . -type f \( -path ./.git -o -path './target*' -o -path ./.libtorch -o -path '*/target' \) -prune \
    -o -type f -print | sed 's|^\./||')
fi
files=()
while IFS= read -r f; do
  [ -f "$f" ] && files+=("$f")
done < <(grep -vE "$skip" <<<"$list")

# name | files (extended regex on the path) | extended regular expression ("i:": any case)
rules=(
  'ticket number|.|i:\b(issue|ticket|bug|pr)s? #?[0-9]+'
  'ticket item|.|i:\((issue [0-9]+, )?items? [0-9]+|\bitems? [0-9]+(, [0-9]+)*:'
  'ticket reference|.|(^|[[:space:](])#[0-9]+\b'
  'path outside the repository|.|shared/[d]esign|/work/|example\.invalid'
  'work-log line|.|^[[:space:]#*>-]*\**20[0-9]{2}-[0-9]{2}-[0-9]{2}\**[[:space:]]*[:)]'
  'work-log line|.|i:\b(changes|measured|session|log) (of|on) 20[0-9]{2}-[0-9]{2}-[0-9]{2}'
  'session talk|.|i:\b(before|after|during|in) this session\b|\b(previous|earlier) session\b|\bthe CI run that\b|\bbefore this change\b'
  'commit hash in code|\.rs$|i:\bcommit [0-9a-f]{7,40}\b|\bmain at [0-9a-f]{7,40}\b'
)

found=0
for rule in "${rules[@]}"; do
  name=${rule%%|*}
  rest=${rule#*|}
  paths=${rest%%|*}
  re=${rest#*|}
  flags=(-n -I -E -H)
  if [[ $re == i:* ]]; then flags+=(-i); re=${re#i:}; fi
  selected=()
  for f in "${files[@]}"; do
    [[ $f =~ $paths ]] && selected+=("$f")
  done
  [ ${#selected[@]} -gt 0 ] || continue
  while IFS= read -r hit; do
    echo "check-docs: $name: $hit"
    found=1
  done < <(printf '%s\0' "${selected[@]}" | xargs -0 grep "${flags[@]}" -e "$re" || true)
done

# Relative links in Markdown resolve (files and headings).
if command -v python3 >/dev/null; then
  python3 scripts/check-links.py || found=1
fi

if [ "$found" -ne 0 ]; then
  echo "check-docs: remove ticket numbers, work-log history, outside paths and broken links (CONTRIBUTING.md, 'Code, comments and docs')" >&2
  exit 1
fi
