# The docs and the binary stay in step (docs/cli.md):
#   1. every `factory …` command line of a sh code block (and every `$ factory …` prompt line) in
#      README.md and docs/*.md runs, in a temp store, and exits 0 — except the few of SKIPPED_LINES below,
#      each with its reason;
#   2. every `--option` the docs write after `factory CMD [SUB]` (synopses, examples, prose in
#      backticks) is an option of `factory CMD [SUB] --help`;
#   3. every option of every `--help` is documented in the section of its command in
#      docs/cli.md (run, shell, ps: docs/shell.md).
# A failure names the file:line or the option, and what to add where.
source "$(dirname "$0")/../lib.sh"
need python3 git skopeo # skopeo: the README reads the store with it

# Command lines that need what this test can't have. Matched as substrings of the line.
SKIPPED_LINES=(
    "sudo build/factory shell recipes/dev.toml|bootstraps Debian through the mirror (minutes): integration.dev_env runs it"
    "podman load|needs podman as root: interop.podman loads factory's archives"
    "podman run|needs podman as root: interop.podman runs factory's images"
    "example.com|names a registry or host on the internet, which a test must not reach: interop.registry* push and pull through a local registry"
    "aws |needs an AWS account: docs/ami-bake.md's upload, done by the bake pipeline"
    "coldsnap |needs an AWS account: docs/ami-bake.md's upload, done by the bake pipeline"
    "packer |needs Packer and an AWS account: docs/ami-bake.md's chroot route"
)

# A work tree shaped like the docs assume: this checkout's recipes, build/factory, a git
# commit (for SOURCE_DATE_EPOCH=$(git log …)), and recipes/app.toml, the docs' stand-in for
# "your recipe" (with the [args] VERSION their examples set).
work=$TEST_DIR/work
mkdir -p "$work/build"
cp -r "$FACTORY_SOURCE_DIR/recipes" "$work/recipes"
ln -s "$FACTORY" "$work/build/factory"
[[ -e $(dirname "$FACTORY")/factory-init ]] && ln -s "$(dirname "$FACTORY")/factory-init" "$work/build/factory-init"
mkdir -p "$work/recipes/app"
echo "app" >"$work/recipes/app/app.txt"
write "$work/recipes/app.toml" <<'EOF'
[image]
name = "app"
context = "app"

[args]
VERSION = "1.0"

[[step]]
copy = [{ src = "app.txt", dest = "/app/${VERSION}.txt" }]
EOF
git -C "$work" init -q
git -C "$work" add -A >/dev/null
git -C "$work" -c user.email=t@example.com -c user.name=t commit -qm docs

# The default store (HOME is the test's): the docs' `$HOME/.cache/factory` is the one used.
unset FACTORY_CACHE
mkdir -p "$TEST_DIR/tmp"

python3 - "$FACTORY_SOURCE_DIR" "$work" "$TEST_DIR" "${SKIPPED_LINES[@]}" <<'PY'
import os, re, subprocess, sys

src, work, test_dir, skips = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
skips = [s.split("|", 1) for s in skips]
factory = os.environ["FACTORY"]
docs = ["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(src, "docs"))
                              if f.endswith(".md"))
failures = []
FACTORY_CALL = re.compile(r"(^|[\s;&|(`$])(?:\./|sudo )?(?:build/)?factory\s")


def strip_comment(line):
    # A '#' that starts a word ends the command (not inside quotes: good enough for the docs).
    out, quote = [], None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            break
        out.append(c)
    return "".join(out).rstrip()


def code_blocks(path):
    """(lang, [(lineno, text)]) of each fenced block."""
    block, lang = None, ""
    for n, line in enumerate(open(os.path.join(src, path), encoding="utf-8"), 1):
        m = re.match(r"^\s*```(\S*)", line)
        if m:
            if block is None:
                block, lang = [], m.group(1)
            else:
                yield lang, block
                block = None
            continue
        if block is not None:
            block.append((n, line.rstrip("\n")))


def logical_lines(lines):
    """Joins backslash continuations: (first lineno, text)."""
    out, pending, start = [], "", 0
    for n, text in lines:
        if not pending:
            start = n
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        out.append((start, pending + text))
        pending = ""
    return out


# ---- 1. run the command lines ------------------------------------------------------------
helpers = f'''set -o pipefail
factory() {{ "{factory}" "$@"; }}
cd "{work}"
'''
ran = 0
for doc in docs:
    for lang, lines in code_blocks(doc):
        runnable = []
        for n, text in logical_lines(lines):
            if lang in ("sh", "bash", "console", "shell"):
                cmd = strip_comment(text.strip())
            elif text.startswith("$ factory "):
                cmd = text[2:].strip()
            else:
                continue
            if cmd.startswith("$ "):
                cmd = cmd[2:]
            if cmd:
                runnable.append((n, cmd))
        if not any(FACTORY_CALL.search(" " + c) for _, c in runnable):
            continue
        script = helpers
        for n, cmd in runnable:
            reason = next((r for pat, r in skips if pat in cmd), None)
            where = f"{doc}:{n}"
            if reason:
                print(f"skip {where}: {cmd}\n     ({reason})", file=sys.stderr)
                continue
            # Paths under /tmp go into the test's directory; sudo is not needed as root.
            run = cmd.replace("/tmp/", test_dir + "/tmp/")
            run = re.sub(r"^sudo ", "", run)
            quoted = cmd.replace("'", "'\\''")
            script += (f"{run}\nrc=$?; if ((rc != 0)); then echo '{where}: exit '$rc': "
                       f"{quoted}' >&2; exit 1; fi\necho 'ran {where}: {quoted}' >&2\n")
            ran += 1
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600)
        sys.stderr.write(r.stderr[-4000:] if r.returncode else
                         "".join(l + "\n" for l in r.stderr.splitlines() if l.startswith("ran ")))
        if r.returncode != 0:
            failures.append(f"a command line of {doc} fails (see above); fix the docs or the "
                            f"binary, or add it to SKIPPED_LINES in tests/integration/docs_commands.sh "
                            f"with the reason")
print(f"ran {ran} command lines of the docs", file=sys.stderr)
if ran < 10:
    failures.append(f"only {ran} command lines found in the docs: the extraction is broken")


# ---- the binary's options ----------------------------------------------------------------
def help_of(words):
    r = subprocess.run([factory] + words + ["--help"], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"factory {' '.join(words)} --help exits {r.returncode}")
    return r.stdout


def options_and_subcommands(text):
    options, subs, section = set(), [], None
    for line in text.splitlines():
        head = line.strip().rstrip(":").lower()
        if head in ("options", "positionals", "subcommands"):
            section = head
            continue
        if not line.startswith("  "):
            continue
        if section == "options":
            # "  -o,--output TEXT ...   description": the first column only (a description,
            # and its wrapped lines, may name other options).
            m = re.match(r"^ {1,4}(-\S.*)", line)
            if m:
                spec = re.split(r"\s{2,}", m.group(1))[0]
                options.update(re.findall(r"(?:^|,)(--[a-z][a-z0-9-]*)", spec))
        elif section == "subcommands":
            m = re.match(r"^\s+([a-z][a-z0-9-]*)", line)
            if m:
                subs.append(m.group(1))
    return options, subs


top_options, commands = options_and_subcommands(help_of([]))
if len(commands) < 8:
    failures.append(f"factory --help lists {len(commands)} commands: parsing the help broke")
helps = {(): top_options}
for c in commands:
    opts, subs = options_and_subcommands(help_of([c]))
    helps[(c,)] = opts
    for s in subs:
        helps[(c, s)] = options_and_subcommands(help_of([c, s]))[0]

# Where each command is documented: docs/cli.md "## factory CMD", except the shell commands.
HOME_OF = {"run": ("docs/shell.md", "## `factory run`"),
           "shell": ("docs/shell.md", "## `factory shell`"),
           "ps": ("docs/shell.md", "## `factory shell`")}


def section(doc, title):
    text = open(os.path.join(src, doc), encoding="utf-8").read()
    start = text.find("\n" + title + "\n")
    if start < 0:
        return None
    end = text.find("\n## ", start + len(title) + 2)
    return text[start:end if end >= 0 else len(text)]


# ---- 2. every option the docs name exists ------------------------------------------------
def mentions(doc):
    """(lineno, text) of the code the doc writes: code blocks (a synopsis's indented lines
    joined to it) and backtick spans of the prose."""
    in_block = False
    last = None
    for n, line in enumerate(open(os.path.join(src, doc), encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if re.match(r"^\s*```", line):
            in_block = not in_block
            if last:
                yield last
            last = None
            continue
        if in_block:
            if last and line.startswith(" ") and not line.strip().startswith("factory"):
                last = (last[0], last[1] + " " + line.strip())
                continue
            if last:
                yield last
            last = (n, line)
        else:
            for span in re.findall(r"`([^`]+)`", line):
                yield (n, span)
    if last:
        yield last


STOP = {"|", "||", "&&", ";", "--"}
for doc in docs:
    for n, text in mentions(doc):
        for m in re.finditer(r"(?:^|[\s$(;&|])(?:\./)?(?:build/)?factory\s+(.*)", text):
            words = []
            for w in m.group(1).split():
                if w in STOP or w.endswith(")"):
                    break  # a pipe, the next command, or the command run inside (after --)
                words.append(w)
            if not words or words[0] not in commands:
                continue
            key = (words[0],)
            if len(words) > 1 and (words[0], words[1]) in helps:
                key = (words[0], words[1])
            for w in words[len(key):]:
                opt = re.match(r"^\[?(--[a-z][a-z0-9-]*)", w)
                if not opt or opt.group(1) in helps[key] or opt.group(1) in top_options:
                    continue
                failures.append(f"{doc}:{n}: `factory {' '.join(key)} {opt.group(1)}`: the "
                                f"binary has no such option (implement it, or fix the docs)")

# ---- 3. every option of every --help is documented ---------------------------------------
for key, opts in sorted(helps.items()):
    if not key:
        continue
    doc, title = HOME_OF.get(key[0], ("docs/cli.md", f"## factory {key[0]}"))
    text = section(doc, title)
    if text is None:
        failures.append(f"factory {key[0]}: {doc} has no section '{title}'; add one with its "
                        f"synopsis and an options table")
        continue
    for o in sorted(opts - {"--help"}):
        if not re.search(re.escape(o) + r"(?![a-z0-9-])", text):
            failures.append(f"factory {' '.join(key)} {o}: not documented in {doc} section "
                            f"'{title}'; add it to the synopsis and the options table")

for f in failures:
    print("FAIL: docs_commands: " + f, file=sys.stderr)
sys.exit(1 if failures else 0)
PY
echo "PASS: $TEST_NAME"
