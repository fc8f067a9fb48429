"""Text handling for recall: tokens, stop-words, stems (exactly FTS5's porter), duplicates, dates.

Stems come from SQLite itself (a private in-memory FTS5 table with the same tokenizer), so the
Python side and the index always agree on what a word is.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import threading
import unicodedata
from datetime import UTC, datetime, timedelta

TOKENIZE = "porter unicode61 remove_diacritics 2"
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)  # what unicode61 calls a token

# Function words and the scaffolding of questions ("when did I", "what is my", "can you remind me").
# Kept short on purpose: a word missing here still works through BM25's idf, a word wrongly here is
# lost. Pronouns stay out of the index query but nothing is removed from the index.
def _wordlist(text: str) -> list[str]:
    return text.split()


STOP_WORDS = frozenset(_wordlist("""
a about above after again against all am an and any are aren as at be because been before being below
between both but by can could couldn did didn do does doesn doing don down during each few for from
further had hadn has hasn have haven having he her here hers herself him himself his how i if in into is
isn it its itself just let ll me might more most must my myself no nor not now of off on once only or
other our ours ourselves out over own re s same shall she should so some such t than that the their
theirs them themselves then there these they this those through to too under until up upon us ve very
was wasn we were weren what when where which while who whom whose why will with won would wouldn you
your yours yourself yourselves also ever yet still really actually again please tell remind remember
recall know think mentioned mention said say told ask asked thing things something anything
ok okay yes yeah hi hello thanks thank sure well oh like get got go going want wanted one
"""))
QUESTION_WORDS = frozenset(_wordlist("what when where which who whom whose why how"))


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def fold(word: str) -> str:
    """Lowercase, with accents removed from Latin letters (what unicode61 remove_diacritics does:
    'Zürich' -> 'zurich', while kana such as 'で' keep their marks)."""
    if word.isascii():
        return word.lower()
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", word.lower()):
        if out and unicodedata.combining(ch) and ord(out[-1]) < 0x250:
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def normalise(text: str) -> str:
    """The duplicate key: folded words joined by single spaces (punctuation and case ignored)."""
    return " ".join(fold(w) for w in words(text))


def norm_key(text: str) -> str:
    return hashlib.blake2b(normalise(text).encode(), digest_size=10).hexdigest()


class Stemmer:
    """Porter stems exactly as the index makes them, memoised."""

    def __init__(self, max_cache: int = 200_000):
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(f"CREATE VIRTUAL TABLE s USING fts5(w, tokenize='{TOKENIZE}')")
        self._conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(s, 'instance')")
        self._cache: dict[str, str] = {}
        self._max = max_cache
        self._lock = threading.Lock()

    def stem_map(self, tokens: set[str]) -> dict[str, str]:
        """{token: stem} for a set of folded tokens."""
        toks = list(tokens)
        return dict(zip(toks, self.stems(toks), strict=True))

    def stems(self, tokens: list[str]) -> list[str]:
        with self._lock:  # the TUI, the agent and the daemon may recall from several threads
            cache = self._cache
            missing = [t for t in dict.fromkeys(tokens) if t not in cache]
            if missing:
                if len(cache) + len(missing) > self._max:  # bounded memory: start over
                    cache.clear()
                    missing = list(dict.fromkeys(tokens))
                c = self._conn
                c.execute("DELETE FROM s")
                c.executemany("INSERT INTO s(rowid, w) VALUES (?, ?)", enumerate(missing, 1))
                got = dict(c.execute("SELECT doc, term FROM v"))
                for i, t in enumerate(missing, 1):
                    cache[t] = got.get(i, t)
            return [cache[t] for t in tokens]


_STEMMER: Stemmer | None = None


def stemmer() -> Stemmer:
    global _STEMMER
    if _STEMMER is None:
        _STEMMER = Stemmer()
    return _STEMMER


# ---- dates in questions ---------------------------------------------------------------------------
_MONTHS = {m: i for i, m in enumerate(
    _wordlist("january february march april may june july august september october november december"), 1)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_WEEKDAYS = {d: i for i, d in enumerate(_wordlist("monday tuesday wednesday thursday friday saturday sunday"))}
_MON = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
       r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DATE_PATTERNS = [
    ("iso", re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")),
    ("dmy", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MON}\b\.?,?(?:\s+(\d{{4}}))?", re.I)),
    ("mdy", re.compile(rf"\b{_MON}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b,?(?:\s+(\d{{4}}))?", re.I)),
    ("my", re.compile(rf"\b(?:in|during|of|last|this)\s+{_MON}\b(?:\s+(\d{{4}}))?", re.I)),
    ("year", re.compile(r"\b(?:in|during)\s+((?:19|20)\d{2})\b", re.I)),
    ("rel", re.compile(r"\b(yesterday|today|last\s+week|last\s+month|last\s+year|this\s+week|this\s+month|"
                       r"(\d+|a|an|one|two|three|four|five|six)\s+(day|week|month|year)s?\s+ago|"
                       r"last\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b", re.I)),
]
_NUM = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _month_window(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _year_for(month: int, day: int, now: datetime) -> int:
    """A date without a year means the latest such date not after ``now``."""
    try:
        return now.year if datetime(now.year, month, day, tzinfo=UTC) <= now + timedelta(days=1) else now.year - 1
    except ValueError:
        return now.year


def date_windows(query: str, now: datetime) -> tuple[list[tuple[datetime, datetime]], str]:
    """Time windows named in a question, and the question with those phrases removed.
    Windows are padded by a day on each side: 'on March 5' is often said late on the 4th in UTC."""
    out: list[tuple[datetime, datetime]] = []
    rest = query
    pad = timedelta(days=1)
    for name, rx in _DATE_PATTERNS:
        for m in rx.finditer(rest):
            try:
                ws = _windows(name, m, now)
            except (ValueError, KeyError):
                continue
            out += [(a - pad, b + pad) for a, b in ws]
        rest = rx.sub(" ", rest)
    return out, rest


def _windows(name: str, m: re.Match, now: datetime) -> list[tuple[datetime, datetime]]:
    """A date without a year ('on 14 March') may mean this year's or an earlier one: the latest
    such date first, then the two before it."""
    w = _window(name, m, now)
    if w is None:
        return []
    if name not in ("dmy", "mdy", "my") or m.group(m.re.groups):
        return [w]
    out = [w]
    for back in (1, 2):
        with contextlib.suppress(ValueError):  # 29 February
            out.append((w[0].replace(year=w[0].year - back), w[1].replace(year=w[1].year - back)))
    return out


def _window(name: str, m: re.Match, now: datetime) -> tuple[datetime, datetime] | None:
    day1 = timedelta(days=1)
    if name == "iso":
        start = datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=UTC)
        return start, start + day1
    if name in ("dmy", "mdy"):
        if name == "dmy":
            day, mon, year = int(m.group(1)), _MONTHS[m.group(2).lower()[:3]], m.group(3)
        else:
            mon, day, year = _MONTHS[m.group(1).lower()[:3]], int(m.group(2)), m.group(3)
        y = int(year) if year else _year_for(mon, day, now)
        start = datetime(y, mon, day, tzinfo=UTC)
        return start, start + day1
    if name == "my":
        mon = _MONTHS[m.group(1).lower()[:3]]
        y = int(m.group(2)) if m.group(2) else _year_for(mon, 1, now)
        return _month_window(y, mon)
    if name == "year":
        y = int(m.group(1))
        return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
    phrase = " ".join(m.group(1).lower().split())
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if phrase == "today":
        return today, today + day1
    if phrase == "yesterday":
        return today - day1, today
    if phrase.startswith("last week") or phrase == "this week":
        return today - timedelta(days=14 if phrase.startswith("last") else 7), today + day1
    if phrase in ("last month", "this month"):
        return today - timedelta(days=62 if phrase == "last month" else 31), today + day1
    if phrase == "last year":
        return datetime(now.year - 1, 1, 1, tzinfo=UTC), datetime(now.year, 1, 1, tzinfo=UTC)
    if phrase.startswith("last "):
        target = _WEEKDAYS[phrase.split()[1]]
        back = (today.weekday() - target) % 7 or 7
        start = today - timedelta(days=back)
        return start, start + day1
    if m.group(2):
        n = _NUM.get(m.group(2).lower()) or int(m.group(2))
        unit = {"day": 1, "week": 7, "month": 30, "year": 365}[m.group(3).lower()]
        center = today - timedelta(days=n * unit)
        spread = timedelta(days=max(1, n * unit // 4))
        return center - spread, center + spread + day1
    return None


# Irregular verb forms that a stemmer cannot join ("bought" is not "buy" to porter). A question in
# one tense and a memory in another is the commonest paraphrase in conversation.
_IRREGULAR = """be was were been; begin began begun; break broke broken; bring brought; build built; buy bought;
catch caught; choose chose chosen; come came; cost; cut; do did done; draw drew drawn; drink drank drunk;
drive drove driven; eat ate eaten; fall fell fallen; feel felt; fight fought; find found; fly flew flown;
forget forgot forgotten; get got gotten; give gave given; go went gone; grow grew grown; have had; hear heard;
hide hid hidden; hold held; keep kept; know knew known; lead led; leave left; lend lent; lose lost; make made;
mean meant; meet met; pay paid; put; read; ride rode ridden; ring rang rung; rise rose risen; run ran;
say said; see saw seen; sell sold; send sent; set; shake shook shaken; shoot shot; show showed shown;
shut; sing sang sung; sit sat; sleep slept; speak spoke spoken; spend spent; stand stood; steal stole stolen;
swim swam swum; take took taken; teach taught; tear tore torn; tell told; think thought; throw threw thrown;
understand understood; wake woke woken; wear wore worn; win won; write wrote written"""
IRREGULAR: dict[str, tuple[str, ...]] = {}
for _group in _IRREGULAR.split(";"):
    _forms = tuple(_group.split())
    for _f in _forms:
        IRREGULAR[_f] = tuple(x for x in _forms if x != _f)
