#!/usr/bin/env python3
"""Builds the false-positive corpus of the banned-term matcher from real, human-written
sentences: the message catalogues (gettext .mo files) that Debian packages install under
/usr/share/locale, in English (the msgids) and their translations, plus the hand-picked
sentences in src/core/terms/fp_seed.txt (words that contain banned substrings: class,
assistant, Scunthorpe, Massachusetts, "kill switch", URLs, ...).

    python3 tools/gen_fp_corpus.py > src/core/terms/false_positives.txt

Each line: `LANG<TAB>sentence`. Selection is deterministic (sorted files, sorted messages, a
fixed stride), keeps sentences of 25 to 220 characters with no format directives, tabs or
line breaks, and at most PER_LANG a language.
"""
import gettext
import glob
import hashlib
import os
import re
import sys

LANGS = ["en", "de", "fr", "es", "it", "ru", "uk", "el", "ja", "zh_CN", "pl", "tr"]
PER_LANG = 260
FORMAT = re.compile(r"%|\{|\}|\\|\t|\n|<|>|&[a-z]+;|\$|_[A-Za-z]")
here = os.path.dirname(os.path.abspath(__file__))

def good(s):
    s = s.strip()
    return 25 <= len(s) <= 220 and " " in s and not FORMAT.search(s) and not s.startswith("-")

def messages(lang):
    out = set()
    src = "de" if lang == "en" else lang
    for path in sorted(glob.glob(f"/usr/share/locale/{src}/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        for k, v in cat.items():
            if isinstance(k, tuple):
                continue
            text = k if lang == "en" else v
            if not isinstance(text, str) or text == k and lang != "en":
                continue
            text = text.replace("\x04", " ").strip()
            if good(text):
                out.add(text)
    # Spread the choice over all catalogues: order by a hash, not alphabetically.
    return sorted(out, key=lambda s: hashlib.sha256(s.encode()).hexdigest())

lines = []
for lang in LANGS:
    ms = messages(lang)[:PER_LANG]
    lines += [f"{lang}\t{m}" for m in ms]
seed = os.path.join(here, "..", "src", "terms", "fp_seed.txt")
for line in open(seed, encoding="utf-8"):
    line = line.rstrip("\n")
    if line and not line.startswith("#"):
        lines.append(line)
sys.stdout.write("\n".join(lines) + "\n")
print(f"{len(lines)} sentences", file=sys.stderr)
