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
    "TOPICS",
    "VERBS",
    "calibration_texts",
    "held_out_texts",
    "load_texts",
    "retrieval_set",
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


# Held out: the kinds of text where INT8 files break (whitespace, lone symbols, emoji, very short
# queries, single words of other scripts, code, numbers), none of them in the validation or
# calibration sets, plus sentences and long passages drawn with other seeds.
HELD_OUT_EDGE = [
    "\t",
    "\n",
    "  \n  ",
    "    ",
    "\u00a0",
    "\u3000",
    "#",
    "@",
    "%",
    "…",
    "—",
    "x",
    "7",
    "no",
    "why?",
    "👍",
    "❤️",
    "😂😂😂",
    "🇩🇪",
    "👩\u200d💻",
    "🎉 congrats!",
    "привет",
    "日本",
    "مرحبا",
    "नमस्ते",
    "שלום",
    "안녕",
    "...",
    "!!!",
    "a b c d e f g",
    "lowercase only no punctuation at all",
]
HELD_OUT_QUERIES_DENSE = [
    "weather tomorrow",
    "pasta recipe",
    "reset router",
    "bitcoin price",
    "nearest pharmacy",
    "jobs in berlin",
    "how to tie a tie",
    "sql join types",
    "iphone battery drain",
    "cheap hotels rome",
    "what is rag",
    "dog food allergy",
    "learn guitar fast",
    "tax deadline",
    "java null pointer",
]
HELD_OUT_CODE = [
    "while True: pass",
    "x = [i * i for i in range(10)]",
    "SELECT * FROM orders WHERE id = 42;",
    "npm install --save-dev typescript",
    "#include <stdio.h>",
    "curl -s https://example.com | jq .",
]
HELD_OUT_NUMBERS = [
    "42",
    "3.14",
    "2025-12-01",
    "+49 30 1234567",
    "100%",
    "$5",
    "v1.2.3",
]


def held_out_texts() -> list[str]:
    """Texts ``prepare`` validates on after the recipe search, which never sees them (disjoint from both sets)."""
    seen = set(validation_texts()) | set(calibration_texts())
    fixed = HELD_OUT_EDGE + HELD_OUT_QUERIES_DENSE + HELD_OUT_CODE + HELD_OUT_NUMBERS
    texts = fixed + _build(seed=4242, n_sentences=80, n_long=24)
    return [text for text in dict.fromkeys(texts) if text not in seen]


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


# -- a small retrieval set: each query has a topic, and documents about it among distractors ---------
# Rankings are only meaningful where some documents are relevant: among documents that are all
# unrelated to a query, MaxSim scores crowd together and any top-10 is noise. Each topic has facts;
# its documents combine a few of them, so each query has TOPIC_DOCUMENTS relevant documents.
TOPICS: dict[str, tuple[str, ...]] = {
    "how to reset password": (
        "Click 'Forgot password' on the sign-in page to receive a reset link by email.",
        "The password reset link expires after 30 minutes; request a new one if it has.",
        "Choose a new password of at least twelve characters that you have not used before.",
        "If the reset email does not arrive, check the spam folder or the address on your account.",
        "After resetting your password you are signed out of every other device.",
        "Administrators can force a password reset for a locked account from the admin console.",
    ),
    "cheap flights to lisbon": (
        "Budget airlines fly to Lisbon Humberto Delgado airport from most European capitals.",
        "Flights to Lisbon are cheapest in November and February, outside the summer season.",
        "Booking a Lisbon flight six to eight weeks ahead usually gives the lowest fare.",
        "Midweek departures to Portugal's capital cost less than Friday or Sunday flights.",
        "Fare alerts track the price of flights to Lisbon and email you when it drops.",
        "A cheap ticket to Lisbon often excludes checked luggage and seat selection.",
    ),
    "python sort dict by value": (
        "In Python, sorted(d.items(), key=lambda item: item[1]) sorts a dict's items by value.",
        "Pass reverse=True to sorted() to order the dictionary from the largest value down.",
        "dict(sorted(d.items(), key=operator.itemgetter(1))) builds a new dict ordered by value.",
        "Since Python 3.7 a dict keeps insertion order, so a dict built from sorted items stays sorted.",
        "collections.Counter.most_common() returns the entries sorted by their counts.",
        "To sort by value and then by key, use key=lambda item: (item[1], item[0]).",
    ),
    "symptoms of flu": (
        "Flu symptoms usually start suddenly with fever, chills and aching muscles.",
        "A dry cough, sore throat and headache are common symptoms of influenza.",
        "Many people with the flu feel exhausted for a week or more after the fever ends.",
        "Children with influenza may also have vomiting or diarrhoea.",
        "See a doctor if flu symptoms include difficulty breathing or chest pain.",
        "Unlike a cold, the flu often brings a high temperature and severe tiredness.",
    ),
    "best pizza near me": (
        "The best-rated pizzerias nearby bake Neapolitan pizza in a wood-fired oven.",
        "Local reviewers rank this pizza place first for its thin crust and fresh mozzarella.",
        "Order pizza for delivery from restaurants within two miles of your location.",
        "This neighbourhood pizzeria is open late and sells pizza by the slice.",
        "Diners praise the margherita and the spicy salami pizza at the corner restaurant.",
        "Compare nearby pizza restaurants by rating, price and delivery time.",
    ),
    "what is a vector database": (
        "A vector database stores embeddings and finds the nearest vectors to a query vector.",
        "Vector databases use approximate nearest neighbour indexes such as HNSW or IVF.",
        "Semantic search embeds documents as vectors and retrieves them by similarity.",
        "A vector database can filter results by metadata while searching by vector similarity.",
        "Retrieval-augmented generation looks up relevant passages in a vector database.",
        "Cosine similarity or dot product measures how close two embedding vectors are.",
    ),
    "train times london to paris": (
        "Eurostar trains from London St Pancras reach Paris Gare du Nord in about two hours sixteen minutes.",
        "The first train from London to Paris leaves shortly after 6 am on weekdays.",
        "There are up to seventeen Eurostar departures a day between London and Paris.",
        "Check in for the Paris train at St Pancras at least 45 minutes before departure.",
        "The last Eurostar from London to Paris usually departs around 8 pm.",
        "Timetables for London to Paris trains change in December and in the summer.",
    ),
    "refund not received": (
        "Refunds are returned to the original payment method within five to ten business days.",
        "If your refund has not arrived after ten days, contact support with your order number.",
        "Your bank may take a few extra days to show a refund on your card statement.",
        "We email a confirmation as soon as the refund for a returned item is processed.",
        "A refund is issued only after the returned parcel reaches our warehouse.",
        "Missing refund? Check the order page to see whether the return was accepted.",
    ),
    "convert celsius to fahrenheit": (
        "To convert Celsius to Fahrenheit, multiply by 9/5 and add 32.",
        "Water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit.",
        "Zero degrees Celsius equals 32 degrees Fahrenheit, the freezing point of water.",
        "A body temperature of 37 °C converts to about 98.6 °F.",
        "For a rough Celsius to Fahrenheit conversion, double the number and add 30.",
        "Minus 40 is the same temperature on the Celsius and Fahrenheit scales.",
    ),
    "who wrote hamlet": (
        "Hamlet was written by William Shakespeare around 1600.",
        "Shakespeare's tragedy Hamlet tells of the Prince of Denmark avenging his father.",
        "The first quarto of Shakespeare's Hamlet was printed in 1603.",
        "Hamlet is the longest play William Shakespeare wrote.",
        "Scholars think Shakespeare based Hamlet on an earlier lost play and a Danish legend.",
        "The line 'To be, or not to be' comes from Shakespeare's Hamlet, Act 3.",
    ),
    "kubernetes pod restart loop": (
        "CrashLoopBackOff means a Kubernetes pod's container keeps crashing and being restarted.",
        "Run kubectl logs --previous to see why the container in the pod crashed last time.",
        "A failing liveness probe makes Kubernetes restart the pod again and again.",
        "Pods restart in a loop when the container exits because of a missing config or secret.",
        "kubectl describe pod shows the restart count and the reason of the last termination.",
        "An OOMKilled container restarts in a loop until its memory limit is raised.",
    ),
    "vegan protein sources": (
        "Lentils, chickpeas and beans are rich vegan sources of protein.",
        "Tofu, tempeh and edamame provide complete plant protein for vegans.",
        "Seitan, made from wheat gluten, has about 25 grams of protein per 100 grams.",
        "Nuts, seeds and peanut butter add protein to a vegan diet.",
        "Quinoa and buckwheat are grains with all essential amino acids.",
        "Vegan athletes often combine legumes and grains to meet their protein needs.",
    ),
    "capital of australia": (
        "Canberra is the capital city of Australia, not Sydney.",
        "Australia's Parliament House stands in Canberra, the national capital.",
        "Canberra was chosen as the capital in 1908 as a compromise between Sydney and Melbourne.",
        "The Australian Capital Territory surrounds Canberra.",
        "Canberra, Australia's capital, was designed by Walter Burley Griffin and Marion Mahony Griffin.",
        "Many people guess Sydney, but the capital of Australia is Canberra.",
    ),
    "how long to boil an egg": (
        "Boil an egg for six to seven minutes for a soft, jammy yolk.",
        "A hard-boiled egg needs about ten to twelve minutes in boiling water.",
        "Put eggs into boiling water and start the timer once the water boils again.",
        "Cool boiled eggs in iced water to stop them cooking and make them easier to peel.",
        "A soft-boiled egg with a runny yolk takes about four to five minutes.",
        "Large eggs straight from the fridge need a minute longer to boil.",
    ),
    "error 404 meaning": (
        "HTTP error 404 Not Found means the server cannot find the requested page.",
        "A 404 error usually comes from a broken link or a mistyped URL.",
        "Unlike a 500 error, a 404 says the server works but the resource does not exist.",
        "Websites show a custom 404 page when a page has been moved or deleted.",
        "Search engines drop pages that keep returning a 404 status code.",
        "Redirect an old URL with a 301 instead of leaving it to return 404.",
    ),
    "mortgage rates 2025": (
        "Average 30-year fixed mortgage rates in 2025 stayed between six and seven percent.",
        "Mortgage rates in 2025 followed the central bank's decisions on interest rates.",
        "A 15-year mortgage in 2025 carried a lower rate than a 30-year loan.",
        "Lenders offered the best 2025 mortgage rates to borrowers with high credit scores.",
        "Refinancing picked up in 2025 when mortgage rates dipped in the autumn.",
        "Compare mortgage offers from several lenders: 2025 rates varied by half a point.",
    ),
    "is coffee bad for you": (
        "For most adults, up to four cups of coffee a day is not harmful.",
        "Coffee's caffeine can disturb sleep and raise heart rate in sensitive people.",
        "Studies link moderate coffee drinking with a lower risk of type 2 diabetes.",
        "Pregnant women are advised to limit caffeine from coffee to about 200 mg a day.",
        "Coffee with lots of sugar and cream adds calories that outweigh its benefits.",
        "Drinking coffee can worsen acid reflux in some people.",
    ),
    "translate thank you to japanese": (
        "'Thank you' in Japanese is arigatou (ありがとう).",
        "The polite form of thank you in Japanese is arigatou gozaimasu.",
        "Japanese speakers say doumo for a casual thank you.",
        "To thank someone formally in Japanese, bow slightly while saying arigatou gozaimasu.",
        "Sumimasen can also mean thank you in Japanese when someone went to trouble for you.",
        "Gochisousama deshita thanks the host in Japanese after a meal.",
    ),
    "largest planet": (
        "Jupiter is the largest planet in the solar system.",
        "Jupiter's diameter is about eleven times Earth's.",
        "The largest planet, Jupiter, is a gas giant made mostly of hydrogen and helium.",
        "Jupiter has more mass than all the other planets of the solar system combined.",
        "The Great Red Spot is a storm on Jupiter larger than Earth.",
        "Saturn is the second largest planet after Jupiter.",
    ),
    "fix leaking tap": (
        "A dripping tap is usually fixed by replacing the worn washer or O-ring.",
        "Turn off the water supply under the sink before taking the leaking tap apart.",
        "Ceramic disc taps that leak need a new cartridge rather than a washer.",
        "Wrap the tap's thread with plumber's tape to stop a leak at the base.",
        "A leaking mixer tap often needs its valve seat cleaned or replaced.",
        "Take the old washer to the shop so the replacement tap washer fits.",
    ),
}
TOPIC_DOCUMENTS = 10
# The same topics asked another way, for the held-out split (its documents are drawn with another seed).
HELD_OUT_QUERIES: dict[str, str] = {
    "how to reset password": "I forgot my password, how do I get a new one?",
    "cheap flights to lisbon": "low cost airfare to portugal",
    "python sort dict by value": "order a dictionary by its values in python",
    "symptoms of flu": "signs that I have influenza",
    "best pizza near me": "top rated pizzeria nearby",
    "what is a vector database": "how does embedding search storage work",
    "train times london to paris": "eurostar timetable st pancras",
    "refund not received": "where is my money back for the return",
    "convert celsius to fahrenheit": "°C to °F formula",
    "who wrote hamlet": "author of the play about the prince of denmark",
    "kubernetes pod restart loop": "CrashLoopBackOff fix",
    "vegan protein sources": "plant based foods high in protein",
    "capital of australia": "which city is australia's capital",
    "how long to boil an egg": "boiled egg cooking time",
    "error 404 meaning": "what does page not found mean",
    "mortgage rates 2025": "home loan interest this year",
    "is coffee bad for you": "health effects of caffeine",
    "translate thank you to japanese": "arigatou meaning",
    "largest planet": "biggest planet in the solar system",
    "fix leaking tap": "dripping faucet repair",
}


def retrieval_set(held_out: bool = False) -> tuple[list[str], list[str]]:
    """``(queries, documents)``: each query's ``TOPIC_DOCUMENTS`` topical documents among generic ones.

    A document joins two to four of its topic's facts in a random order; the generic documents are
    the validation texts (held out: texts drawn apart from the validation and calibration ones). The
    held-out split asks each topic another way and draws its documents with another seed, so a
    recipe search on one split never sees the other's texts.
    """
    rng = random.Random(2 if held_out else 1)
    queries = [HELD_OUT_QUERIES[topic] for topic in TOPICS] if held_out else list(TOPICS)
    documents = []
    for facts in TOPICS.values():
        for _ in range(TOPIC_DOCUMENTS):
            documents.append(" ".join(rng.sample(facts, rng.randint(2, 4))))
    if held_out:
        seen = set(validation_texts()) | set(calibration_texts())
        generic = [text for text in _build(seed=4321, n_sentences=110, n_long=30) if text not in seen]
    else:
        generic = [text for text in validation_texts() if text not in QUERIES]
    documents += generic
    return queries, list(dict.fromkeys(documents))
