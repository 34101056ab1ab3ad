#!/usr/bin/env python3
"""Generate the benchmark data set for `gate` (python3 standard library only).

Writes into the data folder (default `bench-data/`):

  posts.jsonl          100,000 lines of {"text": "..."} (~200 characters each)
  posts.txt            the same texts, one per line (for rg, grep and the floor)
  terms-100.txt        deny terms, one per line (lowercase ASCII words and phrases);
  terms-1000.txt       each list is a prefix of the next, so the 100 terms are also
  terms-10000.txt      in the 1,000 and the 10,000
  policy-100.toml      a policy denying the matching term list, with one Mastodon
  policy-1000.toml     account and no reviewers or quiet hours, so `gate check`
  policy-10000.toml    exercises the matcher and the length rules
  gen.json             what was generated (seed, counts, planted posts)

The output is a pure function of the seed: the same seed gives byte-identical files.
"""

import argparse
import json
import os
import random

SEED = 20261123
POSTS = 100_000
TERM_COUNTS = (100, 1_000, 10_000)

# Common English words: the bulk of every post.
ENGLISH = """
the of and to in is you that it he was for on are as with his they at be this have from
or one had by word but not what all were we when your can said there use an each which she
do how their if will up other about out many then them these so some her would make like him
into time has look two more write go see number no way could people my than first water been
call who oil its now find long down day did get come made may part new launch product team
week today customers release update feature support service help thanks great happy share
join live event open build ship work office meeting news story video photo blog post read
watch learn more about our latest announcement summer winter spring autumn morning evening
coffee lunch community partners design data cloud security privacy performance app mobile
desktop version beta preview free trial price plan offer deal store online order delivery
fast simple easy better best good nice amazing excited proud welcome hello world everyone
friends family city country travel trip conference talk workshop webinar register tickets
available soon tomorrow tonight weekend holiday season goal progress milestone report results
quarter year growth hiring jobs career engineer designer manager developer open source code
project roadmap feedback question answer thread link below above details check try start
stop keep making things people love together thank wonderful incredible journey future
platform network tools guide tips tricks best practices behind scenes sneak peek coming
""".split()

# Non-ASCII words that normalisation has to carry through unchanged.
NON_ASCII = [
    "café", "naïve", "Zürich", "日本語", "Привет", "résumé", "façade", "coöperate",
    "São Paulo", "Ελληνικά", "München", "señor", "crème brûlée", "Kraków", "Ångström",
    "東京", "مرحبا", "שלום", "fiancée", "déjà vu", "piñata", "Øresund", "İstanbul", "straße",
]

EMOJI = [
    "🚀", "🎉", "😀", "🔥", "✨", "👍", "❤️", "💡", "📣", "🙌", "☕", "🌍",
    "👩‍💻", "🇫🇷", "👍🏽", "🤖", "📈", "✅",
]

LINKS = [
    "https://example.com/blog/launch",
    "https://example.org/news?id=42",
    "https://shop.example.com/deals",
    "http://example.net/a/b/c",
    "https://docs.example.com/guide#intro",
]

PUNCT = [",", ".", "!", "?", ":", ";", "…"]

# Syllables for invented deny words: they look like words, are not English, and are long
# enough not to be substrings of everything.
ONSETS = ["b", "bl", "br", "d", "dr", "f", "fl", "fr", "g", "gl", "gr", "k", "kl", "kr",
          "m", "n", "p", "pl", "pr", "qu", "s", "sk", "sl", "sn", "st", "str", "t", "tr",
          "v", "w", "z", "zh", "x", "j", "sh", "ch", "th", "sp"]
VOWELS = ["a", "e", "i", "o", "u", "y", "ai", "ee", "oo", "ou", "ua", "io", "ae"]
CODAS = ["", "", "", "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "x", "z",
         "nk", "rt", "sh", "nd", "lt", "rb"]


def invented_word(rng):
    parts = []
    for _ in range(rng.choice((2, 2, 2, 3, 3))):
        parts.append(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS))
    return "".join(parts)


def make_terms(rng, count):
    """`count` distinct lowercase ASCII deny terms: about 70% invented single words and
    30% phrases of two or three words that contain at least one invented word."""
    english = set(ENGLISH)
    seen = set()
    terms = []
    while len(terms) < count:
        if rng.random() < 0.7:
            term = invented_word(rng)
            if len(term) < 6:
                continue
        else:
            words = [invented_word(rng)]
            for _ in range(rng.choice((1, 1, 2))):
                words.append(rng.choice(ENGLISH) if rng.random() < 0.6 else invented_word(rng))
            rng.shuffle(words)
            term = " ".join(words)
        if term in seen or term in english:
            continue
        seen.add(term)
        terms.append(term)
    return terms


def evade(rng, term):
    """The planted form of a term: as written, or with one of the evasions a poster tries."""
    kind = rng.random()
    if kind < 0.35:
        return term, "plain"
    if kind < 0.55:
        return term.upper(), "upper"
    if kind < 0.70:
        return " ".join(w.capitalize() for w in term.split()), "capitalised"
    if kind < 0.85:
        return "#" + term.replace(" ", ""), "hashtag"
    if kind < 0.93:
        return term + rng.choice(PUNCT), "punctuated"
    # Fullwidth letters: only a normalising matcher sees through these.
    return "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in term), "fullwidth"


def make_post(rng, target, plant):
    tokens = []
    length = 0
    sentence_start = True
    planted_at = rng.randrange(1, 20) if plant is not None else -1
    while length < target:
        if len(tokens) == planted_at:
            tok = plant
        else:
            r = rng.random()
            if r < 0.86:
                tok = rng.choice(ENGLISH)
                if sentence_start:
                    tok = tok.capitalize()
            elif r < 0.91:
                tok = rng.choice(NON_ASCII)
            elif r < 0.95:
                tok = rng.choice(EMOJI)
            elif r < 0.98:
                tok = "#" + rng.choice(ENGLISH)
            elif r < 0.99:
                tok = "@" + rng.choice(ENGLISH) + "@mastodon.example"
            else:
                tok = rng.choice(LINKS)
        sentence_start = False
        if rng.random() < 0.08:
            p = rng.choice(PUNCT)
            tok += p
            sentence_start = p in ".!?…"
        tokens.append(tok)
        length += len(tok) + 1
    if planted_at >= len(tokens):
        tokens.append(plant)
    return " ".join(tokens)


def toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_policy(path, terms):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("# Generated by bench/gen.py: do not edit.\n")
        f.write("version = 1\n\n")
        f.write("[banned_terms]\n")
        f.write("deny = [\n")
        for t in terms:
            f.write(f"  {toml_string(t)},\n")
        f.write("]\n\n")
        f.write("[accounts.brand]\n")
        f.write('platform = "mastodon"\n')
        f.write('server = "https://mastodon.example"\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="bench-data", help="data folder [bench-data]")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--posts", type=int, default=POSTS)
    ap.add_argument("--planted", type=float, default=0.02,
                    help="fraction of posts with a planted deny term [0.02]")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    rng = random.Random(args.seed)
    terms = make_terms(rng, max(TERM_COUNTS))
    for n in TERM_COUNTS:
        with open(os.path.join(args.out, f"terms-{n}.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(terms[:n]) + "\n")
        write_policy(os.path.join(args.out, f"policy-{n}.toml"), terms[:n])

    planted = {"plain": 0, "upper": 0, "capitalised": 0, "hashtag": 0, "punctuated": 0, "fullwidth": 0}
    planted_from = {n: 0 for n in TERM_COUNTS}
    total_chars = 0
    jsonl = open(os.path.join(args.out, "posts.jsonl"), "w", encoding="utf-8", newline="\n")
    txt = open(os.path.join(args.out, "posts.txt"), "w", encoding="utf-8", newline="\n")
    with jsonl, txt:
        for _ in range(args.posts):
            plant = None
            if rng.random() < args.planted:
                # Half the plants come from the first 100 terms, so every list has hits.
                tier = 100 if rng.random() < 0.5 else rng.choice((1_000, 10_000))
                plant, kind = evade(rng, rng.choice(terms[:tier]))
                planted[kind] += 1
                planted_from[tier] += 1
            text = make_post(rng, rng.randint(170, 230), plant)
            total_chars += len(text)
            jsonl.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            txt.write(text + "\n")

    summary = {
        "seed": args.seed,
        "posts": args.posts,
        "mean_chars": round(total_chars / max(args.posts, 1), 1),
        "terms": list(TERM_COUNTS),
        "phrases_in_10000": sum(1 for t in terms if " " in t),
        "planted_by_evasion": planted,
        "planted_from_first_n_terms": planted_from,
    }
    with open(os.path.join(args.out, "gen.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
