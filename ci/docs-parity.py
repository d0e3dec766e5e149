#!/usr/bin/env python3
"""Checks that each Chinese document in docs/zh/ matches its English twin.

For every pair (docs/X.md, docs/zh/X.md) it compares:

- the sections: the same number of headings, level by level, in the same
  order (the heading text is translated, so only its level is compared);
- the code blocks: the same blocks in the same order, each with the same
  info string (```sh, ```text, ...) and byte-identical content once the
  indentation of a block inside a list item is removed;
- the `<!-- guide-test: ... -->` markers that ci/guide-commands.sh reads:
  the same marker before the same block, so both guides run the same
  commands.

docs/zh/README.md, the Chinese entry point, has no twin: each of its code
blocks must appear verbatim in the root README.md or in docs/GUIDE.md.
Documents that exist only in Chinese (the report template) are skipped.

Usage: python3 ci/docs-parity.py [--self-test]. Exits 1 naming the first
difference of each pair, 0 when every pair matches. Called by ci/test.sh.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ["GUIDE.md", "ANSWERS.md", "LABS.md", "RUBRIC.md"]
FENCE = re.compile(r"^(\s*)```(.*)$")
HEADING = re.compile(r"^(#{1,6}) \S")
MARKER = re.compile(r"^\s*<!-- guide-test: (.*) -->\s*$")


def parse(text):
    """Returns (heading levels, code blocks) of a Markdown text.

    A code block is (info string, content, marker before it or None)."""
    levels, blocks = [], []
    lines = text.split("\n")
    i, marker = 0, None
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            indent, info = fence.group(1), fence.group(2).strip()
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                content = lines[i]
                body.append(content[len(indent):] if content.startswith(indent) else content.lstrip())
                i += 1
            if i == len(lines):
                raise ValueError(f"a code block opened with {line.strip()!r} is never closed")
            blocks.append((info, "\n".join(body), marker))
            marker = None
        elif MARKER.match(line):
            marker = MARKER.match(line).group(1).strip()
        else:
            heading = HEADING.match(line)
            if heading:
                levels.append(len(heading.group(1)))
            if line.strip():
                marker = None
        i += 1
    return levels, blocks


def first_difference(a, b):
    """The first line where two texts differ, for the error message."""
    for number, (x, y) in enumerate(zip(a.split("\n"), b.split("\n")), 1):
        if x != y:
            return f"line {number} of the block: {x!r} vs {y!r}"
    return "one block is longer"


def compare(english_path, chinese_path):
    """Returns a list of problems (empty when the two documents match)."""
    english = parse(english_path.read_text(encoding="utf-8"))
    chinese = parse(chinese_path.read_text(encoding="utf-8"))
    problems = []
    if english[0] != chinese[0]:
        problems.append(
            f"sections differ: {len(english[0])} headings (levels {english[0]}) vs "
            f"{len(chinese[0])} (levels {chinese[0]})"
        )
    en_blocks, zh_blocks = english[1], chinese[1]
    if len(en_blocks) != len(zh_blocks):
        problems.append(f"{len(en_blocks)} code blocks in English, {len(zh_blocks)} in Chinese")
    for number, (en, zh) in enumerate(zip(en_blocks, zh_blocks), 1):
        if en[0] != zh[0]:
            problems.append(f"code block {number}: ```{en[0]} vs ```{zh[0]}")
        elif en[1] != zh[1]:
            problems.append(f"code block {number} (```{en[0]}) differs: {first_difference(en[1], zh[1])}")
        elif en[2] != zh[2]:
            problems.append(f"code block {number}: guide-test marker {en[2]!r} vs {zh[2]!r}")
        if problems:
            break  # later blocks are shifted; one clear message is enough
    return problems


def check_readme(docs):
    """docs/zh/README.md: every code block appears in README.md or docs/GUIDE.md."""
    zh = docs / "zh" / "README.md"
    if not zh.exists():
        return ["docs/zh/README.md is missing"]
    known = set()
    for source in (ROOT / "README.md", docs / "GUIDE.md"):
        known.update(block[1] for block in parse(source.read_text(encoding="utf-8"))[1])
    blocks = parse(zh.read_text(encoding="utf-8"))[1]
    if not blocks:
        return ["docs/zh/README.md shows no commands"]
    return [
        f"docs/zh/README.md code block {n} is in neither README.md nor docs/GUIDE.md: {b[1][:60]!r}"
        for n, b in enumerate(blocks, 1)
        if b[1] not in known
    ]


def self_test():
    """The checker must notice each kind of difference."""
    base = "# T\n\n## A\n\n<!-- guide-test: run -->\n```sh\necho hi\n```\n\n- item:\n\n  ```text\n  x\n  ```\n"
    levels, blocks = parse(base)
    assert levels == [1, 2], levels
    assert blocks == [("sh", "echo hi", "run"), ("text", "x", None)], blocks
    variants = {
        "a heading": base.replace("## A", "## A\n\n## B"),
        "a block": base.replace("echo hi", "echo ho"),
        "a marker": base.replace("<!-- guide-test: run -->\n", ""),
        "an info string": base.replace("```text", "```sh"),
    }
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        english = Path(tmp) / "en.md"
        english.write_text(base, encoding="utf-8")
        chinese = Path(tmp) / "zh.md"
        chinese.write_text(base.replace("# T", "# 标题"), encoding="utf-8")
        assert compare(english, chinese) == [], compare(english, chinese)
        for what, text in variants.items():
            chinese.write_text(text, encoding="utf-8")
            assert compare(english, chinese), f"a changed {what} went unnoticed"
    print("docs parity: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    docs = ROOT / "docs"
    failed = False
    for name in PAIRS:
        english, chinese = docs / name, docs / "zh" / name
        if not english.exists() or not chinese.exists():
            print(f"FAIL: {name}: both docs/{name} and docs/zh/{name} must exist", file=sys.stderr)
            failed = True
            continue
        problems = compare(english, chinese)
        for problem in problems:
            print(f"FAIL: docs/zh/{name} vs docs/{name}: {problem}", file=sys.stderr)
        failed |= bool(problems)
        if not problems:
            levels, blocks = parse(english.read_text(encoding="utf-8"))
            print(f"docs parity: docs/zh/{name}: {len(levels)} sections, {len(blocks)} code blocks, as in English")
    readme_problems = check_readme(docs)
    for problem in readme_problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if not readme_problems:
        print("docs parity: docs/zh/README.md: every command it shows is in README.md or docs/GUIDE.md")
    failed |= bool(readme_problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
