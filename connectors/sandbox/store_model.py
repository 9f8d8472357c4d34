"""Constants and propensities of the synthetic store's model (see the docstring of ``store.py``).

Everything the generator draws from is declared here, so the planted truths can be read in one place.
"""

from __future__ import annotations

import numpy as np

TIME_ZONE = "America/New_York"
PROPERTY_ID = "123456789"
CURRENCY_CODE = "USD"

# GA4 default channel groups, and the HubSpot original-source value each one maps to (bijective).
CHANNELS = (
    "Organic Search",
    "Paid Search",
    "Direct",
    "Email",
    "Organic Social",
    "Paid Social",
    "Referral",
    "Display",
)
HS_SOURCES = (
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "DIRECT_TRAFFIC",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "PAID_SOCIAL",
    "REFERRALS",
    "OTHER_CAMPAIGNS",
)
CHANNEL_TO_HS_SOURCE = dict(zip(CHANNELS, HS_SOURCES, strict=True))
CH_EMAIL = CHANNELS.index("Email")
CH_DISPLAY = CHANNELS.index("Display")

# Channel mix differs for new and returning visitors (returning ones come back more via Direct/Email).
CHANNEL_WEIGHTS_NEW = np.array([0.33, 0.15, 0.15, 0.05, 0.09, 0.08, 0.07, 0.08])
CHANNEL_WEIGHTS_RETURNING = np.array([0.27, 0.11, 0.26, 0.10, 0.07, 0.06, 0.06, 0.07])

# Purchase propensity multiplier per channel: the planted better (Email) and worse (Display) segments.
PURCHASE_CHANNEL_MULT = np.array([1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 0.4])
# Lead (generate_lead) propensity per channel, mild and realistic; not a planted truth.
LEAD_CHANNEL_MULT = np.array([1.0, 1.15, 0.95, 1.2, 0.8, 0.9, 1.0, 0.75])

# (source, medium, campaign, weight within the channel) per channel; GA4 spells campaign of unpaid traffic
# "(organic)", "(direct)", "(referral)".
CHANNEL_SOURCES: dict[str, list[tuple[str, str, str, float]]] = {
    "Organic Search": [
        ("google", "organic", "(organic)", 0.85),
        ("bing", "organic", "(organic)", 0.10),
        ("duckduckgo", "organic", "(organic)", 0.05),
    ],
    "Paid Search": [
        ("google", "cpc", "brand_search", 0.45),
        ("google", "cpc", "generic_trail_shoes", 0.35),
        ("bing", "cpc", "competitor_terms", 0.20),
    ],
    "Direct": [("(direct)", "(none)", "(direct)", 1.0)],
    "Email": [
        ("newsletter", "email", "weekly_newsletter", 0.55),
        ("newsletter", "email", "spring_sale", 0.25),
        ("crm", "email", "cart_reminder", 0.20),
    ],
    "Organic Social": [
        ("instagram.com", "referral", "(referral)", 0.45),
        ("facebook.com", "referral", "(referral)", 0.35),
        ("reddit.com", "referral", "(referral)", 0.20),
    ],
    "Paid Social": [
        ("facebook", "paid_social", "prospecting_video", 0.55),
        ("instagram", "paid_social", "retargeting_carousel", 0.45),
    ],
    "Referral": [
        ("runnersworld.com", "referral", "(referral)", 0.5),
        ("partner-blog.example.org", "referral", "(referral)", 0.3),
        ("trailforum.example.net", "referral", "(referral)", 0.2),
    ],
    "Display": [
        ("google", "display", "gdn_awareness", 0.6),
        ("google", "display", "gdn_retargeting", 0.4),
    ],
}
SOURCE_COMBOS: list[tuple[int, str, str, str, float]] = [
    (ci, src, med, camp, w) for ci, ch in enumerate(CHANNELS) for (src, med, camp, w) in CHANNEL_SOURCES[ch]
]

# Device and country are properties of the visitor, drawn independently of everything else: the planted
# null dimensions (identical propensities in every value).
DEVICES = ("desktop", "mobile", "tablet")
DEVICE_WEIGHTS = np.array([0.42, 0.52, 0.06])
COUNTRIES = (
    "United States",
    "United Kingdom",
    "Germany",
    "Canada",
    "France",
    "Australia",
    "Netherlands",
    "Spain",
)
COUNTRY_WEIGHTS = np.array([0.44, 0.12, 0.10, 0.10, 0.07, 0.07, 0.05, 0.05])

LANDING_PAGES = (
    "/",
    "/products/trail-shoe",
    "/products/road-shoe",
    "/products/hiking-boot",
    "/products/running-jacket",
    "/products/merino-socks",
    "/collections/men",
    "/collections/women",
    "/collections/sale",
    "/collections/new-arrivals",
    "/blog/how-to-choose-trail-shoes",
    "/blog/marathon-training-plan",
    "/blog/shoe-size-guide",
    "/about",
    "/contact",
    "/brochure",
    "/demo",
    "/search",
    "/account/login",
    "/stores",
)
_LP_BASE = np.array([18, 6, 5, 4, 3, 2, 5, 5, 4, 3, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1], dtype=float)


def _landing_weights() -> np.ndarray:
    """Landing-page mix per channel (rows: channels): search lands on blogs and products, email on sale pages."""
    w = np.tile(_LP_BASE, (len(CHANNELS), 1))
    w[0, 10:13] *= 4.0  # organic search -> blog
    w[1, 1:6] *= 3.0  # paid search -> products
    w[2, 0] *= 3.0  # direct -> home
    w[3, 8:10] *= 5.0  # email -> sale, new arrivals
    w[4, 10:13] *= 2.0
    w[5, 1:6] *= 2.5
    w[6, 10:13] *= 2.0
    w[7, 6:10] *= 3.0  # display -> collections
    return w / w.sum(axis=1, keepdims=True)


LANDING_WEIGHTS = _landing_weights()

# Hour-of-day profile of session starts (property-local).
HOUR_WEIGHTS = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.0,
        1.8,
        2.6,
        3.2,
        3.5,
        3.6,
        3.8,
        3.7,
        3.5,
        3.4,
        3.4,
        3.5,
        3.8,
        4.2,
        4.3,
        3.8,
        2.8,
        1.8,
    ]
)
WEEKDAY_FACTOR = np.array([1.05, 1.05, 1.03, 1.02, 0.97, 0.92, 0.96])  # Monday .. Sunday

# Session-level propensities.
RETURNING_SHARE = 0.32
PRIOR_USERS_DAYS = 20  # visitors who existed before the window, as a multiple of sessions_per_day
ENGAGED_BASE = 0.52
PURCHASE_BASE = 0.0125  # before channel / returning / wishlist multipliers
PURCHASE_RETURNING_MULT = 1.3
WISHLIST_RATE = 0.05
WISHLIST_PURCHASE_MULT = 4.0  # planted: add_to_wishlist strongly raises purchase in the same session
SHARE_RATE = 0.015  # planted: constant, drawn independently of everything (share does not lead to purchase)
CHECKOUT_EXTRA = 0.012  # begin_checkout without purchase
CART_EXTRA = 0.05  # add_to_cart without checkout
VIEW_EXTRA = 0.30  # view_item without cart
SEARCH_RATE = 0.12
SIZE_CHART_RATE = 0.15  # among sessions with view_item
SIGN_UP_RATE = 0.02
FILE_DOWNLOAD_RATE = 0.03
WRITE_REVIEW_RATE = 0.004
REVENUE_LOG_MEAN = np.log(85.0)
REVENUE_LOG_SD = 0.5

# Lead forms (GA4 custom parameter form_name) and the HubSpot form names they become.
LEAD_FORMS = ("contact_us", "brochure_request", "newsletter_signup", "demo_request")
HS_FORM_NAMES = ("Contact us", "Brochure request", "Newsletter signup", "Demo request")
LEAD_FORM_WEIGHTS = np.array([0.30, 0.30, 0.30, 0.10])
FORM_NEWSLETTER = LEAD_FORMS.index("newsletter_signup")
FORM_DEMO = LEAD_FORMS.index("demo_request")

LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
# Progression probabilities (lead->MQL, MQL->SQL, SQL->opportunity, deal won) per form: Demo request is
# the planted leader. The row of Newsletter signup is not used directly: see NEWSLETTER_INTENT_WEIGHTS.
_BASE_PROGRESSION = (0.35, 0.50, 0.45, 0.35)
_DEMO_PROGRESSION = (0.75, 0.75, 0.75, 0.55)
PROGRESSION = np.array([_BASE_PROGRESSION, _BASE_PROGRESSION, _BASE_PROGRESSION, _DEMO_PROGRESSION])
# Planted null against the REST: a newsletter signup progresses like a random contact of the other forms
# (its "intent" is drawn from their weights: 3/7 Contact us, 3/7 Brochure request, 1/7 Demo request), so it
# reaches every stage, customer included, at the same expected rate as all other contacts together (the
# comparison micro_macro_lift makes), not merely like the non-demo forms. The draw has its own RNG stream
# (seed, NEWSLETTER_INTENT_STREAM) so that every other draw, sessions and events included, stays the same.
NEWSLETTER_INTENT_WEIGHTS = np.where(
    np.arange(len(LEAD_FORM_WEIGHTS)) == FORM_NEWSLETTER, 0.0, LEAD_FORM_WEIGHTS
)
NEWSLETTER_INTENT_WEIGHTS = NEWSLETTER_INTENT_WEIGHTS / NEWSLETTER_INTENT_WEIGHTS.sum()
NEWSLETTER_INTENT_STREAM = 0x4E4C  # "NL"
DAY = 86_400
# Mean delays (seconds) between stage entries; exponential draws plus a floor.
NEWSLETTER_TO_LEAD_MEAN = 3_600
LEAD_TO_MQL_MEAN = 3 * DAY
MQL_TO_SQL_MEAN = 4 * DAY
SQL_TO_OPP_MEAN = 5 * DAY
OPP_TO_CLOSE_MEAN = 21 * DAY
LASTMOD_AFTER_MEAN = 2 * DAY
ARCHIVED_SHARE = 0.005
MERGED_SHARE = 0.005
COMPANY_SHARE = 0.6  # contacts associated with a company

DEAL_PIPELINE = "default"
DEAL_OPEN_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
)
DEAL_STAGES = (*DEAL_OPEN_STAGES, "closedwon", "closedlost")
DEAL_AMOUNT_LOG_MEAN = np.log(6_000.0)
DEAL_AMOUNT_LOG_SD = 0.7
DEAL_ARCHIVED_SHARE = 0.003

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Oliver", "Sophia", "Elijah", "Isabella", "James",
    "Mia", "Lucas", "Amelia", "Mateo", "Harper", "Ben", "Evelyn", "Leo", "Chloe", "Jonas",
    "Lena", "Felix", "Clara", "Hugo", "Ines", "Lars", "Maya", "Theo", "Zoe", "Arjun",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Miller", "Davis", "Garcia", "Wilson", "Taylor", "Clark", "Lewis",
    "Walker", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill",
    "Mueller", "Schmidt", "Dubois", "Martin", "Jansen", "Rossi", "Lopez", "Novak", "Berg", "Quinn",
)  # fmt: skip
COMPANY_WORDS = (
    "Summit", "Trailhead", "Ridge", "Alpine", "Riverbend", "Northwind", "Granite", "Cedar", "Harbor",
    "Meadow", "Canyon", "Pinecrest", "Bluebird", "Ironwood", "Lakeside", "Redrock",
)  # fmt: skip
COMPANY_SUFFIXES = ("Outfitters", "Sports", "Running Club", "Gear Co", "Athletics", "Retail", "Events")
