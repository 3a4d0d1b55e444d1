#!/usr/bin/env python3
"""Every relative link of the repository's Markdown files names a file that exists and, for a
link into a Markdown file with `#anchor`, a heading of that file. One line per broken link;
exit 1 if there is any. Run by scripts/check-docs.sh."""
import os
import re
import subprocess
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
try:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.md"],
                         capture_output=True, text=True, check=True).stdout
    files = out.split()
except (OSError, subprocess.CalledProcessError):
    files = [os.path.relpath(os.path.join(d, f)) for d, dirs, fs in os.walk(".")
             for f in fs if f.endswith(".md")
             if not any(p.startswith(("target", ".git", ".libtorch")) for p in d.split(os.sep)[1:])]


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, -N for repeats."""
    seen, out = {}, set()
    in_code = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


broken = 0
for f in files:
    if not os.path.isfile(f):
        continue
    text = re.sub(r"```.*?```", "", open(f, encoding="utf-8").read(), flags=re.S)
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        url = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", url):
            continue
        path, _, frag = url.partition("#")
        target = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.exists(target):
            print(f"check-docs: broken link: {f}: {url}")
            broken += 1
        elif frag and target.endswith(".md") and frag not in anchors(target):
            print(f"check-docs: broken link (no such heading): {f}: {url}")
            broken += 1
sys.exit(1 if broken else 0)
