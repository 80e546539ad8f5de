"""Generate `campaigns/prospects.csv`: 300 made-up B2B prospects for the demo outbound campaign.

Deterministic: a fixed seed and the standard library's `random` only, so running this script again writes a
byte-identical file. A few rows are deliberately messy (see `MESSY`), the way real exports are.

    python campaigns/generate_prospects.py
"""

from __future__ import annotations

import csv
import random
import unicodedata
from pathlib import Path

SEED = 20240611
ROWS = 300
COMPANIES = 130
OUT = Path(__file__).with_name("prospects.csv")
FIELDS = [
    "email",
    "first_name",
    "last_name",
    "title",
    "company",
    "website",
    "industry",
    "employees",
    "country",
    "linkedin_url",
]

# Name pools by culture, and the countries where each culture is most common (people are also mixed freely).
NAMES: dict[str, tuple[list[str], list[str]]] = {
    "anglo": (
        [
            "James",
            "Emily",
            "Michael",
            "Sarah",
            "David",
            "Jessica",
            "Daniel",
            "Olivia",
            "Ryan",
            "Hannah",
            "Chris",
            "Megan",
            "Tom",
            "Laura",
            "Ben",
            "Rachel",
            "Matt",
            "Kate",
            "Andrew",
            "Grace",
        ],
        [
            "Smith",
            "Johnson",
            "Brown",
            "Taylor",
            "Walker",
            "Harris",
            "Clarke",
            "Wright",
            "Mitchell",
            "Turner",
            "Campbell",
            "Parker",
            "Evans",
            "Collins",
            "Murphy",
            "Reed",
            "Bennett",
            "Hughes",
            "Foster",
            "Sullivan",
        ],
    ),
    "german": (
        [
            "Lukas",
            "Anna",
            "Jonas",
            "Lena",
            "Felix",
            "Marie",
            "Maximilian",
            "Sophie",
            "Tobias",
            "Katharina",
            "Jan",
            "Julia",
            "Florian",
            "Lea",
            "Stefan",
        ],
        [
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Hoffmann",
            "Schulz",
            "Koch",
            "Richter",
            "Klein",
            "Wolf",
            "Neumann",
        ],
    ),
    "french": (
        [
            "Camille",
            "Louis",
            "Chloé",
            "Hugo",
            "Léa",
            "Antoine",
            "Manon",
            "Julien",
            "Inès",
            "Mathieu",
            "Élodie",
            "Nicolas",
            "Pauline",
            "Théo",
        ],
        [
            "Martin",
            "Bernard",
            "Dubois",
            "Thomas",
            "Robert",
            "Richard",
            "Petit",
            "Durand",
            "Leroy",
            "Moreau",
            "Lefèvre",
            "Girard",
            "Fontaine",
            "Rousseau",
        ],
    ),
    "spanish": (
        [
            "Lucía",
            "Pablo",
            "Sofía",
            "Javier",
            "María",
            "Alejandro",
            "Carmen",
            "Diego",
            "Valentina",
            "Mateo",
            "Isabel",
            "Andrés",
            "Camila",
            "Sergio",
        ],
        [
            "García",
            "Martínez",
            "López",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Fernández",
            "Díaz",
            "Ruiz",
            "Torres",
            "Ramírez",
            "Navarro",
            "Castillo",
            "Morales",
        ],
    ),
    "portuguese": (
        ["João", "Beatriz", "Gabriel", "Mariana", "Rafael", "Larissa", "Thiago", "Fernanda", "Bruno", "Juliana"],
        ["Silva", "Santos", "Oliveira", "Souza", "Costa", "Pereira", "Almeida", "Ferreira", "Rodrigues", "Lima"],
    ),
    "dutch": (
        ["Daan", "Sanne", "Bram", "Fleur", "Thijs", "Lotte", "Ruben", "Eva", "Joost", "Femke"],
        ["de Vries", "Jansen", "van Dijk", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "Bos"],
    ),
    "nordic": (
        ["Erik", "Ingrid", "Lars", "Astrid", "Magnus", "Freja", "Oskar", "Sofia", "Henrik", "Maja", "Søren"],
        ["Andersson", "Johansson", "Nilsson", "Larsen", "Hansen", "Lindqvist", "Berg", "Nyström", "Holm", "Jørgensen"],
    ),
    "polish": (
        ["Piotr", "Agnieszka", "Tomasz", "Katarzyna", "Michał", "Magdalena", "Krzysztof", "Zofia"],
        ["Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński", "Szymański"],
    ),
    "indian": (
        [
            "Aarav",
            "Priya",
            "Rohan",
            "Ananya",
            "Vikram",
            "Neha",
            "Arjun",
            "Kavya",
            "Rahul",
            "Ishita",
            "Sanjay",
            "Divya",
            "Karthik",
            "Meera",
        ],
        [
            "Sharma",
            "Patel",
            "Gupta",
            "Iyer",
            "Reddy",
            "Nair",
            "Mehta",
            "Kapoor",
            "Desai",
            "Krishnan",
            "Bhatt",
            "Menon",
            "Rao",
            "Joshi",
        ],
    ),
    "chinese": (
        ["Wei", "Mei", "Jun", "Xin", "Hao", "Lin", "Yang", "Jia", "Chen", "Yu"],
        ["Wang", "Li", "Zhang", "Liu", "Chen", "Huang", "Zhao", "Wu", "Zhou", "Tan"],
    ),
    "japanese": (
        ["Haruto", "Yui", "Sota", "Aoi", "Ren", "Hina", "Kenji", "Sakura", "Takumi", "Yuki"],
        ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi", "Kato"],
    ),
    "arabic": (
        ["Omar", "Layla", "Ahmed", "Fatima", "Yusuf", "Noor", "Karim", "Amira", "Hassan", "Salma"],
        ["Haddad", "Khalil", "Mansour", "Nasser", "Saleh", "Farouk", "Aziz", "Hamdan", "Rahman", "Darwish"],
    ),
    "hebrew": (
        ["Noa", "Itai", "Tamar", "Yonatan", "Maya", "Eitan", "Shira", "Ariel"],
        ["Cohen", "Levi", "Mizrahi", "Peretz", "Biton", "Friedman", "Katz", "Shapiro"],
    ),
    "nigerian": (
        ["Chinedu", "Adaeze", "Tunde", "Ngozi", "Emeka", "Funmilayo", "Seun", "Chiamaka", "Obinna", "Yetunde"],
        ["Okafor", "Adeyemi", "Okonkwo", "Balogun", "Eze", "Adebayo", "Nwosu", "Ogunleye", "Obi", "Afolabi"],
    ),
    "korean": (
        ["Min-jun", "Seo-yeon", "Ji-ho", "Ha-eun", "Dong-hyun", "Soo-ah"],
        ["Kim", "Lee", "Park", "Choi", "Jung", "Kang"],
    ),
}

# country: (weight, TLD for company domains, cultures of people there, in order of likelihood)
COUNTRIES: dict[str, tuple[int, str, list[str]]] = {
    "United States": (30, ".com", ["anglo", "anglo", "spanish", "indian", "chinese", "korean", "german"]),
    "United Kingdom": (12, ".co.uk", ["anglo", "anglo", "indian", "polish", "arabic"]),
    "Canada": (5, ".ca", ["anglo", "french", "chinese", "indian"]),
    "Germany": (9, ".de", ["german", "german", "german", "polish"]),
    "France": (6, ".fr", ["french", "french", "arabic"]),
    "Netherlands": (4, ".nl", ["dutch", "dutch", "german"]),
    "Spain": (4, ".es", ["spanish", "spanish"]),
    "Sweden": (3, ".se", ["nordic"]),
    "Denmark": (2, ".dk", ["nordic"]),
    "Poland": (3, ".pl", ["polish"]),
    "Ireland": (2, ".ie", ["anglo"]),
    "Israel": (3, ".co.il", ["hebrew"]),
    "United Arab Emirates": (2, ".ae", ["arabic", "indian", "anglo"]),
    "India": (6, ".in", ["indian"]),
    "Singapore": (3, ".sg", ["chinese", "indian", "anglo"]),
    "Japan": (2, ".jp", ["japanese"]),
    "South Korea": (1, ".kr", ["korean"]),
    "Australia": (4, ".com.au", ["anglo", "anglo", "chinese"]),
    "Brazil": (4, ".com.br", ["portuguese"]),
    "Mexico": (2, ".mx", ["spanish"]),
    "Nigeria": (2, ".ng", ["nigerian"]),
    "South Africa": (1, ".co.za", ["anglo", "nigerian"]),
}

INDUSTRIES: dict[str, list[str]] = {  # industry: words that make a plausible company name in it
    "SaaS": ["Cloud", "Stack", "Flow", "Sync", "Hub", "Desk", "Ops", "Labs"],
    "Fintech": ["Pay", "Ledger", "Capital", "Fin", "Vault", "Credit", "Treasury"],
    "Logistics": ["Freight", "Logistics", "Cargo", "Fleet", "Shipping", "Routes"],
    "Healthcare": ["Health", "Care", "Med", "Clinic", "Bio", "Therapeutics"],
    "E-commerce": ["Shop", "Cart", "Market", "Goods", "Store", "Commerce"],
    "Cybersecurity": ["Shield", "Guard", "Secure", "Sentinel", "Cipher"],
    "Manufacturing": ["Industries", "Works", "Manufacturing", "Components", "Systems"],
    "Marketing Agency": ["Media", "Creative", "Digital", "Studio", "Agency"],
    "EdTech": ["Learn", "Academy", "Campus", "Tutor", "Classroom"],
    "HR Tech": ["Talent", "People", "Hire", "Workforce", "Payroll"],
    "Real Estate": ["Property", "Estates", "Realty", "Homes"],
    "Consulting": ["Consulting", "Advisory", "Partners", "Group"],
}
INDUSTRY_WEIGHTS = [18, 12, 8, 8, 9, 6, 6, 6, 5, 5, 4, 5]

STEMS = [
    "North",
    "Blue",
    "Bright",
    "Clear",
    "Swift",
    "Nova",
    "Orbit",
    "Summit",
    "Pioneer",
    "Harbor",
    "Cedar",
    "Atlas",
    "Vertex",
    "Lumen",
    "Quanta",
    "Apex",
    "Silver",
    "Iron",
    "Maple",
    "Beacon",
    "Kite",
    "Pulse",
    "Meridian",
    "Evergreen",
    "Granite",
    "Horizon",
    "Tidal",
    "Solace",
    "Zenith",
    "Copper",
    "Falcon",
    "Aurora",
    "Juniper",
    "Redwood",
    "Sterling",
    "Polar",
    "Cobalt",
    "Willow",
    "Crescent",
    "Keystone",
]
SUFFIXES = ["ly", "ify", "hq", "wise", "base"]  # one-word startup names: "Payly", "Talentwise"
LEGAL = {
    "United Kingdom": " Ltd",
    "Germany": " GmbH",
    "France": " SAS",
    "Netherlands": " B.V.",
    "Brazil": " Ltda",
}

# (title, weight, smallest company it appears in). Weights favour the people outbound usually targets.
TITLES: list[tuple[str, int, int]] = [
    ("Founder & CEO", 4, 1),
    ("Co-Founder", 2, 1),
    ("CEO", 2, 1),
    ("CTO", 3, 1),
    ("COO", 2, 10),
    ("CFO", 2, 20),
    ("Chief Marketing Officer", 2, 50),
    ("Chief Revenue Officer", 2, 50),
    ("President", 1, 20),
    ("Managing Director", 2, 10),
    ("VP Sales", 4, 20),
    ("VP of Marketing", 3, 20),
    ("VP Engineering", 2, 30),
    ("SVP Revenue", 1, 500),
    ("Vice President, Customer Success", 1, 200),
    ("Head of Growth", 5, 5),
    ("Head of Sales", 4, 5),
    ("Head of Partnerships", 2, 20),
    ("Head of Revenue Operations", 2, 50),
    ("Director of Sales", 4, 30),
    ("Marketing Director", 3, 20),
    ("Director of Engineering", 2, 50),
    ("Senior Director, Demand Generation", 1, 300),
    ("Sales Manager", 5, 10),
    ("Marketing Manager", 5, 10),
    ("Product Manager", 3, 10),
    ("Revenue Operations Manager", 2, 30),
    ("Customer Success Manager", 3, 10),
    ("Growth Lead", 2, 5),
    ("Team Lead, Inside Sales", 2, 50),
    ("Engineering Manager", 2, 30),
    ("SDR", 6, 5),
    ("BDR", 3, 10),
    ("Account Executive", 6, 5),
    ("Senior Account Executive", 2, 50),
    ("Growth Marketer", 2, 5),
    ("Software Engineer", 2, 5),
    ("Data Analyst", 2, 20),
    ("Operations Coordinator", 1, 20),
    ("Content Marketing Specialist", 2, 10),
]

FREE_DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "proton.me"]


def ascii_slug(text: str, keep: str = "") -> str:
    """`Jørgensen` -> `jorgensen`, `de Vries` -> `devries` (characters in `keep` are kept as they are)."""
    text = text.replace("ø", "o").replace("Ø", "O").replace("æ", "ae").replace("ß", "ss").replace("ł", "l")
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return "".join(ch for ch in plain if ch.isalnum() or ch in keep)


def employee_count(rng: random.Random) -> int:
    """Skewed small: most companies have a few dozen people, a few are enterprises (2..20000)."""
    mu, sigma = (8.3, 0.7) if rng.random() < 0.06 else (3.6, 1.5)
    return max(2, min(20000, round(rng.lognormvariate(mu, sigma))))


def make_companies(rng: random.Random) -> list[dict[str, object]]:
    countries = list(COUNTRIES)
    weights = [COUNTRIES[c][0] for c in countries]
    industries = list(INDUSTRIES)
    companies: list[dict[str, object]] = []
    used: list[str] = []
    while len(companies) < COMPANIES:
        country = rng.choices(countries, weights)[0]
        industry = rng.choices(industries, INDUSTRY_WEIGHTS)[0]
        stem = rng.choice(STEMS)
        word = rng.choice(INDUSTRIES[industry])
        style = rng.random()
        if style < 0.55:
            name = f"{stem} {word}"
        elif style < 0.8:
            name = f"{stem}{word.lower()}"
        elif len(word) <= 6:
            name = f"{word}{rng.choice(SUFFIXES)}"
        else:
            name = f"{stem} {word}"
        if name in used:
            continue
        used.append(name)
        employees = employee_count(rng)
        slug = ascii_slug(name)
        generic = rng.choice([".com", ".com", ".io", ".co", ".ai"])
        tld = COUNTRIES[country][1] if rng.random() < 0.45 else generic
        display = name + (LEGAL.get(country, "") if employees > 50 and rng.random() < 0.4 else "")
        companies.append(
            {"company": display, "domain": slug + tld, "industry": industry, "employees": employees, "country": country}
        )
    return companies


def make_person(rng: random.Random, company: dict[str, object]) -> tuple[str, str]:
    cultures = COUNTRIES[str(company["country"])][2]
    culture = rng.choice(cultures) if rng.random() < 0.85 else rng.choice(list(NAMES))
    firsts, lasts = NAMES[culture]
    return rng.choice(firsts), rng.choice(lasts)


def pick_title(rng: random.Random, employees: int) -> str:
    fitting = [(t, w) for t, w, smallest in TITLES if employees >= smallest]
    return rng.choices([t for t, _ in fitting], [w for _, w in fitting])[0]


def make_rows(rng: random.Random) -> list[dict[str, object]]:
    companies = make_companies(rng)
    rows: list[dict[str, object]] = []
    emails: list[str] = []
    while len(rows) < ROWS:
        company = rng.choice(companies)
        first, last = make_person(rng, company)
        employees = int(company["employees"])  # type: ignore[call-overload]
        local = f"{ascii_slug(first, keep='-')}.{ascii_slug(last)}"
        domain = str(company["domain"])
        if employees <= 10 and rng.random() < 0.25:  # founders of tiny companies often use a personal address
            domain = rng.choice(FREE_DOMAINS)
        elif rng.random() < 0.12:  # some companies use first initial + last name
            local = f"{ascii_slug(first)[0]}{ascii_slug(last)}"
        email = f"{local}@{domain}"
        if email in emails:
            continue
        emails.append(email)
        handle = f"{ascii_slug(first, keep='-')}-{ascii_slug(last)}-{rng.randrange(16**6):06x}"
        rows.append(
            {
                "email": email,
                "first_name": first,
                "last_name": last,
                "title": pick_title(rng, employees),
                "company": company["company"],
                "website": f"https://{company['domain']}",
                "industry": company["industry"],
                "employees": employees,
                "country": company["country"],
                "linkedin_url": f"https://www.linkedin.com/in/{handle}",
            }
        )
    return rows


def make_messy(rows: list[dict[str, object]]) -> None:
    """The handful of rows real exports always have: each one tests that the campaign's steps cope."""
    rows[17]["title"] = ""  # no title in the CRM
    rows[42]["email"] = f"  {str(rows[42]['email']).upper()}  "  # shouting, padded with spaces
    rows[88]["linkedin_url"] = ""  # never found their profile
    rows[131].update(  # a company name with a comma: the CSV must quote it
        company="Hartley, Moss & Partners",
        website="https://hartleymoss.com",
        industry="Consulting",
        email=f"{ascii_slug(str(rows[131]['first_name']))}.{ascii_slug(str(rows[131]['last_name']))}@hartleymoss.com",
    )
    domain = str(rows[204]["website"]).removeprefix("https://")
    rows[204].update(  # known by one name only
        first_name="Aditi",
        last_name="",
        email=f"aditi@{domain}",
        linkedin_url="https://www.linkedin.com/in/aditi-" + str(rows[204]["linkedin_url"])[-6:],
    )
    rows[260]["title"] = "  vp of SALES "  # typed by hand


def main() -> None:
    rng = random.Random(SEED)
    rows = make_rows(rng)
    make_messy(rows)
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} prospects to {OUT}")


if __name__ == "__main__":
    main()
