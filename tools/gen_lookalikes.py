#!/usr/bin/env python3
"""Generates src/core/terms/tables.rs: which characters imitate a plain letter a-z, which are
invisible, and which separators may spell a word letter by letter.

    python3 tools/gen_lookalikes.py [PATH_TO_unicode-security/src/tables.rs] > src/core/terms/tables.rs

Sources (nothing is downloaded):
- the UTS #39 confusables table as the `unicode-security` crate ships it (its
  `CONFUSABLES` array, generated from `confusables.txt`); found in ~/.cargo/registry when no
  path is given;
- character names and categories from Python's `unicodedata`, for the Latin letterforms
  the confusables table does not cover (small capitals, letters with a stroke or hook,
  enclosed and squared letters, regional indicators).

A character maps to a letter when (in this order):
1. it is ASCII: never (plain letters are never rewritten into other plain letters);
2. its name says it is a Latin letterform of one plain letter: `LATIN LETTER SMALL CAPITAL X`,
   `LATIN SMALL|CAPITAL LETTER X WITH ...` that has no canonical decomposition (stroke, hook,
   bar, ...), `CIRCLED|PARENTHESIZED|SQUARED|NEGATIVE ... LATIN ... LETTER X`, `REGIONAL
   INDICATOR SYMBOL LETTER X`;
3. it is a letter (category L*) of any script and its confusable prototype, with combining
   marks removed and chained through rule 2 (Cyrillic `к` -> `ĸ` -> k), is one plain
   letter. Upper-case sources are mapped too, but an upper-case source whose prototype is
   `l` means capital I (UTS #39 maps `I` to `l`), so it becomes `i`;
4. a precomposed character whose canonical decomposition is a mapped base plus combining
   marks maps like its base (so that NFKC composing `Υ` + U+0301 changes nothing).
"""
import glob
import os
import re
import sys
import unicodedata

PATH = sys.argv[1] if len(sys.argv) > 1 else None
if PATH is None:
    found = sorted(glob.glob(os.path.expanduser(
        "~/.cargo/registry/src/*/unicode-security-0.1.*/src/tables.rs")))
    if not found:
        sys.exit("gen_lookalikes.py: unicode-security not found in ~/.cargo/registry; pass its src/tables.rs")
    PATH = found[-1]
src = open(PATH, encoding="utf-8").read()
start = src.index("const CONFUSABLES: &'static [(char, &'static [char])] = &[")
end = src.index("];", start)
CONF = {}
for m in re.finditer(r"\('\\u\{([0-9a-f]+)\}',\s*&\[([^\]]*)\]\)", src[start:end]):
    CONF[int(m.group(1), 16)] = [int(x, 16) for x in re.findall(r"\\u\{([0-9a-f]+)\}", m.group(2))]
assert len(CONF) > 6000, len(CONF)

def is_mark(cp):
    return unicodedata.category(chr(cp)).startswith("M")

NAME_RULES = [
    re.compile(r"^LATIN LETTER SMALL CAPITAL ([A-Z])$"),
    re.compile(r"^LATIN (?:SMALL|CAPITAL) LETTER ([A-Z]) WITH .*$"),
    re.compile(r"^(?:NEGATIVE )?(?:CIRCLED|PARENTHESIZED|SQUARED|DOUBLE CIRCLED|CIRCLED ITALIC)"
               r"(?: ITALIC)? LATIN (?:SMALL |CAPITAL )?LETTER ([A-Z])$"),
    re.compile(r"^REGIONAL INDICATOR SYMBOL LETTER ([A-Z])$"),
]
# Named letterforms that imitate a letter although their name does not say which.
# Greek epsilon and Latin open e: UTS #39 sends them to `ꞓ` (c with bar), but in a word
# they stand for e.
EXTRA = {0x0138: "k", 0x0251: "a", 0x01BD: "s", 0x0261: "g", 0x0131: "i", 0x0237: "j",
         0x03B5: "e", 0x025B: "e", 0x0190: "e", 0x0395: "e"}
# Scripts whose characters are whole syllables or ideographs, not letters: a Han character
# or a Hangul jamo that happens to look like a Latin letter is not standing in for one.
NOT_LETTERS = [(0x1100, 0x11FF), (0x2E80, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF),
               (0xF900, 0xFAFF), (0x3130, 0x318F), (0x20000, 0x3FFFF)]

def by_name(cp):
    if cp < 0x80:
        return None
    if cp in EXTRA:
        return EXTRA[cp]
    name = unicodedata.name(chr(cp), "")
    for i, rule in enumerate(NAME_RULES):
        m = rule.match(name)
        if m:
            if i == 1 and unicodedata.decomposition(chr(cp)) != "":
                return None  # é and friends: NFD already strips the accent
            return m.group(1).lower()
    return None

def by_confusable(cp, depth=0):
    if cp not in CONF or depth > 3:
        return None
    proto = [p for p in CONF[cp] if not is_mark(p)]
    if len(proto) != 1:
        return None
    p = proto[0]
    if p < 0x80:
        c = chr(p)
        if not c.isalpha():
            return None
        if chr(cp).lower() != chr(cp) and c == "l":
            return "i"
        return c.lower()
    return by_name(p) or by_confusable(p, depth + 1)

table = {}
for cp in range(0x80, 0x110000):
    c = chr(cp)
    cat = unicodedata.category(c)
    letter = by_name(cp)
    if any(a <= cp <= b for a, b in NOT_LETTERS):
        continue
    if letter is None and (cat.startswith("L") or cp in CONF and cat == "Cn"):
        letter = by_confusable(cp)
    if letter is not None:
        table[cp] = letter

# Rule 4: precomposed characters over a mapped base.
for cp in range(0x80, 0x110000):
    if cp in table:
        continue
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        continue
    parts = [int(x, 16) for x in d.split()]
    base = parts[0]
    while unicodedata.decomposition(chr(base)) and not unicodedata.decomposition(chr(base)).startswith("<"):
        base = int(unicodedata.decomposition(chr(base)).split()[0], 16)
    if base in table and all(is_mark(p) for p in parts[1:]):
        table[cp] = table[base]

# Invisible: Default_Ignorable_Code_Point (from the crate, so it follows its Unicode
# version) plus every format character (Cf), which includes U+FFF9..U+FFFB.
dstart = src.index("const DEFAULT_IGNORABLE: &'static [(char, char)] = &[")
dend = src.index("];", dstart)
invisible = set()
for a, b in re.findall(r"\('\\u\{([0-9a-f]+)\}',\s*'\\u\{([0-9a-f]+)\}'\)", src[dstart:dend]):
    invisible.update(range(int(a, 16), int(b, 16) + 1))
for cp in range(0x80, 0x110000):
    if unicodedata.category(chr(cp)) == "Cf":
        invisible.add(cp)
invisible -= set(table)

# Joiners: separators that may spell a word letter by letter (beyond the ASCII ones the
# matcher knows): spaces, dashes, connectors, symbols (emoji, the braille blank), bullets,
# and the emoji blocks wholesale so that emoji newer than this Python's Unicode count too.
joiner = set()
for cp in range(0x80, 0x110000):
    cat = unicodedata.category(chr(cp))
    if cat in ("Zs", "Pd", "Pc", "So", "Sk", "Sm") and cp not in table and cp not in invisible:
        joiner.add(cp)
joiner.update([0x00B7, 0x2022, 0x2027, 0x30FB, 0x2219, 0x22C5])
for a, b in [(0x1F000, 0x1FAFF), (0x2600, 0x27BF)]:
    joiner.update(cp for cp in range(a, b + 1) if cp not in table)

def ranges(cps):
    out = []
    for cp in sorted(cps):
        if out and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out

def lines(items, per):
    return "\n".join("    " + " ".join(items[i:i + per]) for i in range(0, len(items), per))

w = sys.stdout.write
w("// @generated by tools/gen_lookalikes.py from the unicode-security crate's UTS #39 data\n")
w("// (Unicode %d.%d.%d) and Python's unicodedata (Unicode %s). Do not edit by hand.\n\n"
  % (*map(int, re.search(r"UNICODE_VERSION: \(u64, u64, u64\) = \((\d+), (\d+), (\d+)\)", src).groups()),
     unicodedata.unidata_version))
w("/// Characters that imitate a plain letter, and that letter; sorted by character.\n")
w("pub(super) static LOOKALIKE: &[(char, u8)] = &[\n")
w(lines(["('\\u{%x}', b'%s')," % (cp, table[cp]) for cp in sorted(table)], 5))
w("\n];\n\n/// Invisible characters (default-ignorable or format), as sorted inclusive ranges.\n")
w("pub(super) static INVISIBLE: &[(char, char)] = &[\n")
w(lines(["('\\u{%x}', '\\u{%x}')," % (a, b) for a, b in ranges(invisible)], 4))
w("\n];\n\n/// Non-ASCII separators that may spell a word letter by letter, as sorted inclusive ranges.\n")
w("pub(super) static JOINER: &[(char, char)] = &[\n")
w(lines(["('\\u{%x}', '\\u{%x}')," % (a, b) for a, b in ranges(joiner)], 4))
w("\n];\n")
print("lookalikes %d, invisible ranges %d, joiner ranges %d" % (len(table), len(ranges(invisible)), len(ranges(joiner))), file=sys.stderr)
