"""Built-in, deterministic texts: validation and calibration sets, and the benchmark's vocabulary.

Stdlib only: ``prepare`` and ``benchmark`` both read it, neither owns it.

They cover what users send: short queries, sentences, long passages past the truncation
length, several languages and scripts, code, numbers/URLs/emoji. Validation and calibration
sets never share a text.
"""

from __future__ import annotations

import random
from pathlib import Path

__all__ = [
    "CODE",
    "EDGE",
    "MULTILINGUAL",
    "NUMBERS",
    "OBJECTS",
    "QUERIES",
    "SUBJECTS",
    "VERBS",
    "calibration_texts",
    "load_texts",
    "validation_texts",
]

SUBJECTS = [
    "The new database index",
    "A small team in Berlin",
    "Our customer support bot",
    "The city council",
    "This quarterly report",
    "The embedding model",
    "A migrating flock of geese",
    "The central bank",
    "My grandmother's recipe",
    "The open-source community",
    "A delayed night train",
    "The hospital's triage nurse",
    "The Mars rover",
    "A junior developer",
    "The football club",
    "An old lighthouse keeper",
]
VERBS = [
    "reduced",
    "announced",
    "explained",
    "doubled",
    "questioned",
    "rebuilt",
    "ignored",
    "measured",
    "predicted",
    "shipped",
    "translated",
    "cancelled",
    "approved",
    "described",
    "tested",
    "forgot",
]
OBJECTS = [
    "query latency by forty percent",
    "a plan to plant ten thousand trees",
    "the refund policy to angry users",
    "its interest rate forecast",
    "why the build failed on Tuesday",
    "the route across the Alps",
    "the quality of the search results",
    "a new vaccine schedule",
    "the old payment system",
    "the cost of cloud storage",
    "a recipe for sourdough bread",
    "the safety rules for the night shift",
    "a bug in the tokenizer",
    "the weather in the mountains",
    "the score of last night's match",
    "the meaning of an ancient poem",
]
QUERIES = [
    "how to reset password",
    "cheap flights to lisbon",
    "python sort dict by value",
    "symptoms of flu",
    "best pizza near me",
    "what is a vector database",
    "train times london to paris",
    "refund not received",
    "convert celsius to fahrenheit",
    "who wrote hamlet",
    "kubernetes pod restart loop",
    "vegan protein sources",
    "capital of australia",
    "how long to boil an egg",
    "error 404 meaning",
    "mortgage rates 2025",
    "is coffee bad for you",
    "translate thank you to japanese",
    "largest planet",
    "fix leaking tap",
]
MULTILINGUAL = [
    "Der Zug nach München hat heute zwanzig Minuten Verspätung.",
    "Je voudrais réserver une table pour deux personnes ce soir.",
    "¿Dónde está la estación de tren más cercana?",
    "Il modello di embedding funziona bene anche in italiano.",
    "O relatório trimestral mostra um aumento nas vendas.",
    "Deze zin is in het Nederlands geschreven.",
    "Быстрая коричневая лиса перепрыгивает через ленивую собаку.",
    "Сегодня в Москве идёт снег и очень холодно.",
    "東京の天気は明日晴れるでしょう。",
    "我想学习如何使用向量数据库进行语义搜索。",
    "오늘 회의는 오후 세 시에 시작합니다.",
    "مرحبا، كيف يمكنني مساعدتك اليوم؟",
    "שלום, מה שלומך היום?",
    "यह वाक्य हिंदी में लिखा गया है।",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "Bugün hava çok güzel, parka gidelim mi?",
    "Tôi muốn đặt một phòng khách sạn ở Hà Nội.",
    "ภาษาไทยเป็นภาษาที่สวยงาม",
    "Dziś w Warszawie pada deszcz.",
    "Kiitos paljon avustasi eilen!",
]
CODE = [
    "def add(a, b):\n    return a + b",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "for (int i = 0; i < n; ++i) { sum += v[i]; }",
    "const x = await fetch('/api/v1/items?limit=10');",
    "git rebase -i HEAD~3 && git push --force-with-lease",
    "docker run -p 8080:8080 -e PORT=8080 app:latest",
    'fn main() { println!("hello {}", 42); }',
    '<div class="card"><span>{{ title }}</span></div>',
    "import numpy as np; x = np.linalg.norm(v, axis=1, keepdims=True)",
    "kubectl get pods -n prod -o wide | grep Crash",
    '{"id": 17, "tags": ["a", "b"], "active": true}',
    "regex: ^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$",
]
NUMBERS = [
    "Order #48213 shipped on 2024-03-17 at 14:05 UTC.",
    "Call +1 (415) 555-0132 or email help@example.com.",
    "https://example.org/docs/v2/getting-started?lang=en#install",
    "The invoice total is €1,249.99 incl. 19% VAT.",
    "Pi is approximately 3.14159265358979; e is 2.71828.",
    "ISBN 978-3-16-148410-0, page 212, line 7.",
    "Temperature: -12.5°C, humidity 87%, wind 34 km/h NNW.",
    '192.168.0.1 - - [10/Oct/2023:13:55:36] "GET / HTTP/1.1" 200',
    "Flight LH 2417 departs gate B42 at 06:35.",
    "Version 3.11.7 fixes CVE-2023-40217 and 12 other bugs.",
]
EDGE = [
    "",
    " ",
    "a",
    "OK",
    "?!",
    "🙂",
    "🚀🔥 launch day!!! 🎉",
    "   leading and trailing spaces   ",
    "UPPER CASE SHOUTING TEXT",
    "tab\tseparated\tvalues",
    "line one\nline two\nline three",
]


def _long_passage(rng: random.Random, sentences: int) -> str:
    parts = []
    for _ in range(sentences):
        parts.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}.")
        if rng.random() < 0.3:
            parts.append(rng.choice(NUMBERS))
    return " ".join(parts)


def _build(seed: int, n_sentences: int, n_long: int) -> list[str]:
    rng = random.Random(seed)
    texts = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(n_sentences)]
    texts += [_long_passage(rng, rng.randint(25, 60)) for _ in range(n_long)]
    texts += [f"{rng.choice(MULTILINGUAL)} {rng.choice(MULTILINGUAL)}" for _ in range(10)]
    return texts


def validation_texts() -> list[str]:
    """The built-in validation set (>= 200 texts, fixed; separate from the calibration set)."""
    fixed = QUERIES + MULTILINGUAL + CODE + NUMBERS + EDGE
    texts = fixed + _build(seed=7, n_sentences=110, n_long=30)
    return list(dict.fromkeys(texts))  # stable de-duplication


def calibration_texts() -> list[str]:
    """Texts for calibration statistics, disjoint from :func:`validation_texts`."""
    held_out = set(validation_texts())
    return [text for text in _build(seed=1234, n_sentences=160, n_long=40) if text not in held_out]


def load_texts(path: Path) -> list[str]:
    """Read user texts: one per line, or JSONL with a ``text`` field (or a bare JSON string) per line."""
    import json

    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            item = json.loads(line)
            texts.append(item["text"] if isinstance(item, dict) else str(item))
        else:
            texts.append(line)
    return texts
