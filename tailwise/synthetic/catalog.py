"""Static vocabulary of the synthetic world: taxonomy, brands, places, names.

Everything here is plain constant data (no randomness, no I/O). `world.py`
turns it into arrays and the behavioural coefficients that the simulation and
`utility.py` share; `world.json` records it for people and the oracle.
"""

from __future__ import annotations

# top level -> [(leaf, median price)]; names with "&" exist so that the
# "&" vs "and" spelling defect has something to vary.
TAXONOMY: dict[str, list[tuple[str, float]]] = {
    "Electronics": [
        ("Phones", 450.0),
        ("Laptops", 900.0),
        ("Audio", 120.0),
        ("Cameras", 550.0),
        ("Wearables", 200.0),
    ],
    "Home": [
        ("Kitchen", 60.0),
        ("Furniture", 300.0),
        ("Bed & Bath", 45.0),
        ("Decor", 35.0),
        ("Lighting", 55.0),
    ],
    "Fashion": [
        ("Shoes", 85.0),
        ("Jackets", 120.0),
        ("Dresses", 70.0),
        ("Bags & Accessories", 60.0),
    ],
    "Sports": [
        ("Outdoor", 90.0),
        ("Fitness", 50.0),
        ("Cycling", 250.0),
        ("Running", 70.0),
        ("Team Sports", 40.0),
    ],
    "Beauty": [("Skincare", 25.0), ("Makeup", 20.0), ("Fragrance", 60.0), ("Hair & Body", 15.0)],
    "Books": [("Fiction", 14.0), ("Non-Fiction", 20.0), ("Children", 10.0), ("Comics", 12.0)],
    "Toys": [
        ("Building Sets", 45.0),
        ("Board Games", 35.0),
        ("Dolls & Figures", 25.0),
        ("Outdoor Play", 60.0),
    ],
    "Grocery": [("Coffee & Tea", 12.0), ("Snacks", 5.0), ("Pantry", 6.0), ("Beverages", 8.0)],
}

BRANDS: dict[str, list[str]] = {
    "Electronics": ["Voltix", "Nexon", "Auralis", "Pixelon", "Quanta", "Lumio"],
    "Home": ["Casara", "Hearthly", "Nordhem", "Vellum", "Brisa", "Oakmoor"],
    "Fashion": ["Marlo", "Strada", "Velour", "Kinfolk", "Atelier Nine", "Rue Bleue"],
    "Sports": ["Peakline", "Stride", "Trailcraft", "Velo", "Apexa", "Kinetic"],
    "Beauty": ["Dermalux", "Petalis", "Aurea", "Solenne", "Bloomwell", "Cleo"],
    "Books": ["Penfold", "Inkwell", "Larkspur", "Northgate", "Quillon", "Brightpage"],
    "Toys": ["Brixo", "Playvo", "Tumbletoy", "Wonderkin", "Gamewise", "Jollybox"],
    "Grocery": ["Bramble", "Harvesto", "Kaffa", "Crunchy", "Pantrico", "Fizzwell"],
}

# country -> (share of users, calling code, trunk prefix, mobile prefix)
COUNTRIES: dict[str, tuple[float, str, str, str]] = {
    "DE": (0.20, "49", "0", "151"),
    "FR": (0.12, "33", "0", "612"),
    "GB": (0.14, "44", "0", "7700"),
    "US": (0.22, "1", "", "415"),
    "ES": (0.07, "34", "", "612"),
    "IT": (0.07, "39", "", "347"),
    "NL": (0.05, "31", "0", "612"),
    "PL": (0.05, "48", "", "501"),
    "SE": (0.03, "46", "0", "701"),
    "BR": (0.05, "55", "0", "1199"),
}

# country -> [(region, IANA time zone)]
REGIONS: dict[str, list[tuple[str, str]]] = {
    "DE": [
        ("Bavaria", "Europe/Berlin"),
        ("Berlin", "Europe/Berlin"),
        ("Hamburg", "Europe/Berlin"),
        ("North Rhine-Westphalia", "Europe/Berlin"),
    ],
    "FR": [
        ("Ile-de-France", "Europe/Paris"),
        ("Provence", "Europe/Paris"),
        ("Brittany", "Europe/Paris"),
    ],
    "GB": [("England", "Europe/London"), ("Scotland", "Europe/London"), ("Wales", "Europe/London")],
    "US": [
        ("New York", "America/New_York"),
        ("California", "America/Los_Angeles"),
        ("Texas", "America/Chicago"),
        ("Illinois", "America/Chicago"),
        ("Florida", "America/New_York"),
    ],
    "ES": [
        ("Madrid", "Europe/Madrid"),
        ("Catalonia", "Europe/Madrid"),
        ("Andalusia", "Europe/Madrid"),
    ],
    "IT": [("Lombardy", "Europe/Rome"), ("Lazio", "Europe/Rome"), ("Sicily", "Europe/Rome")],
    "NL": [
        ("North Holland", "Europe/Amsterdam"),
        ("South Holland", "Europe/Amsterdam"),
        ("Utrecht", "Europe/Amsterdam"),
    ],
    "PL": [("Masovia", "Europe/Warsaw"), ("Lesser Poland", "Europe/Warsaw")],
    "SE": [("Stockholm", "Europe/Stockholm"), ("Skane", "Europe/Stockholm")],
    "BR": [("Sao Paulo", "America/Sao_Paulo"), ("Rio de Janeiro", "America/Sao_Paulo")],
}

FIRST_NAMES_FEMALE = [
    "Anna",
    "Maria",
    "Sophie",
    "Emma",
    "Julia",
    "Laura",
    "Clara",
    "Lena",
    "Chloe",
    "Olivia",
    "Isabella",
    "Giulia",
    "Lucia",
    "Zofia",
    "Elsa",
    "Ana",
    "Camille",
    "Hannah",
    "Mia",
    "Grace",
]
FIRST_NAMES_MALE = [
    "Lukas",
    "Jonas",
    "Paul",
    "Leon",
    "Louis",
    "Hugo",
    "Oliver",
    "James",
    "Noah",
    "Liam",
    "Mateo",
    "Lorenzo",
    "Marco",
    "Jakub",
    "Erik",
    "Pedro",
    "Daniel",
    "Thomas",
    "Max",
    "Felix",
]
LAST_NAMES = [
    "Muller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Martin",
    "Bernard",
    "Dubois",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Johnson",
    "Garcia",
    "Lopez",
    "Rossi",
    "Russo",
    "Bianchi",
    "de Jong",
    "Jansen",
    "Nowak",
    "Kowalski",
    "Andersson",
    "Johansson",
    "Silva",
    "Santos",
    "Oliveira",
    "Moreau",
    "Wilson",
    "Davis",
]

EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example"]
ALT_EMAIL_DOMAIN = "altmail.example"
MARKETING_SOURCES = ["newsletter", "referral", "paid_search", "social_ad", "affiliate", "organic"]

GENDERS = ["female", "male", "non_binary"]
INCOME_BANDS = ["low", "lower_mid", "upper_mid", "high"]
DEVICES = ["mobile", "desktop", "tablet"]
CHANNELS = ["organic", "search", "email", "social", "paid"]
CHANNEL_SHARES = [0.35, 0.25, 0.12, 0.13, 0.15]
EVENT_TYPES = ["page_view", "product_view", "add_to_cart", "purchase", "rating"]

ADJECTIVES = ["Classic", "Pro", "Essential", "Ultra", "Compact", "Premium", "Everyday", "Nova"]
DESCRIPTION_PHRASES = [
    "Built to last and easy to use.",
    "A customer favourite this season.",
    "Thoughtfully designed with quality materials.",
    "Great value for everyday use.",
    "Lightweight, reliable and stylish.",
    "Made for people who want the best.",
]
