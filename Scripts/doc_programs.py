"""The Swift code of the DocC articles as programs, for Scripts/check-doc-programs.sh.

  doc_programs.py program ARTICLE.md OUT.swift   every ```swift block, in order, as one program:
      a block that begins with `import` starts a new scope (`do { }`), a block that does not
      continues the one before it (an article's sections build on each other)
  doc_programs.py fragments ARTICLE.md PRELUDE.swift OUT.swift   the same, after a prelude that
      declares what the article's fragments take as given (q, k, v, a shape, ...)
  doc_programs.py comments PRELUDE.swift OUT.swift SOURCE.swift...   every ```swift block of
      the sources' DocC comments (`///`), each in a scope of its own after the prelude, with a
      comment naming where it came from
  doc_programs.py outputs ARTICLE.md OUTPUT.txt EXPECTED   every fenced block without a
      language whose first line the program printed must appear in its output, line by line in
      order (blocks that show output may leave lines out, never change one); and at least
      EXPECTED blocks must be found so, since a block whose first line changed is not recognised
"""
import sys


def fenced_blocks(path):
    """(language, lines) of every fenced block of a Markdown file."""
    blocks, language, lines = [], None, None
    for line in open(path, encoding="utf-8").read().splitlines():
        if line.startswith("```"):
            if lines is None:
                language, lines = line[3:].strip(), []
            else:
                blocks.append((language, lines))
                language, lines = None, None
        elif lines is not None:
            lines.append(line)
    return blocks


def program(path, prelude=""):
    imports, scopes = set(), []
    for language, lines in fenced_blocks(path):
        if language != "swift":
            continue
        if not scopes or (lines and lines[0].startswith("import ")):
            scopes.append([])
        for line in lines:
            if line.startswith("import "):
                imports.add(line)
            else:
                scopes[-1].append("    " + line)
    head = "\n".join(sorted(imports)) + "\n" + prelude
    return head + "\n".join("do {\n" + "\n".join(s) + "\n}" for s in scopes) + "\n"


def comment_blocks(path):
    """(line number, lines) of every ```swift block in the `///` comments of a Swift file."""
    blocks, lines, start = [], None, 0
    for number, line in enumerate(open(path, encoding="utf-8").read().splitlines(), 1):
        text = line.strip()
        if not text.startswith("///"):
            lines = None
            continue
        body = text[3:][1:] if text[3:].startswith(" ") else text[3:]
        if lines is None and body.strip() == "```swift":
            lines, start = [], number + 1
        elif lines is not None and body.strip() == "```":
            blocks.append((start, lines))
            lines = None
        elif lines is not None:
            lines.append(body)
    return blocks


def comments_program(prelude, sources):
    scopes = []
    for path in sources:
        for start, lines in comment_blocks(path):
            scopes.append(f"do {{  // {path}:{start}\n" + "\n".join("    " + l for l in lines) + "\n}")
    return prelude + "\n".join(scopes) + "\n", len(scopes)


def check_outputs(path, output_path, expected):
    printed = open(output_path, encoding="utf-8").read().splitlines()
    checked, failures = 0, []
    for language, lines in fenced_blocks(path):
        shown = [l.rstrip() for l in lines if l.strip()]
        if language or not shown or shown[0] not in (p.rstrip() for p in printed):
            continue
        checked += 1
        at = 0
        for line in shown:
            while at < len(printed) and printed[at].rstrip() != line:
                at += 1
            if at == len(printed):
                failures.append(f"{path}: the block that begins '{shown[0]}' shows '{line}', which the program does not print there")
                break
            at += 1
    if checked < expected:
        failures.append(f"{path}: only {checked} of the {expected} output blocks were recognised (their first lines are no "
                        "longer printed: a number in one changed, or a block was removed; update the article or the count "
                        "in Scripts/check-doc-programs.sh)")
    for f in failures:
        print(f, file=sys.stderr)
    print(f"{path}: {checked} output blocks checked against the program's output, {len(failures)} failures")
    return not failures


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "program":
        open(sys.argv[3], "w", encoding="utf-8").write(program(sys.argv[2]))
    elif mode == "fragments":
        prelude = open(sys.argv[3], encoding="utf-8").read()
        open(sys.argv[4], "w", encoding="utf-8").write(program(sys.argv[2], prelude))
    elif mode == "comments":
        text, count = comments_program(open(sys.argv[2], encoding="utf-8").read(), sys.argv[4:])
        open(sys.argv[3], "w", encoding="utf-8").write(text)
        print(f"{count} code blocks from the DocC comments of {len(sys.argv) - 4} source files")
    elif mode == "outputs":
        sys.exit(0 if check_outputs(sys.argv[2], sys.argv[3], int(sys.argv[4])) else 1)
    else:
        sys.exit(f"unknown mode {mode}")
