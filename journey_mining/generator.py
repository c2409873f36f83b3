"""Seeded generator of realistic B2B source exports, with the ground truth behind them.

Intuition
---------
Each account is simulated as a journey through the stage ladder, but not a
straight one: its buying committee researches anonymously on the website,
identifies itself through forms, reads nurture emails, meets sales late, loses
deals and comes back, skips stages (an inbound demo request), goes dormant, buys,
runs projects, drifts between engagements, re-engages or cancels, and sometimes
refers others. Clients carry a latent *health*: unhealthy clients open more
support tickets, give lower NPS scores and are more likely to cancel, which is
what a churn model should find.

The simulation knows the truth the pipeline has to infer, and writes it to
`<out>/truth/` (the ingest reads only the top folder): who each identifier
belongs to and whether the contract's stitching rules can resolve it, each
account's furthest stage, engagements, health and cancellations.

With `dirt=True` the exports look like real ones: monthly web files that overlap
by a few days, a Parquet month, gzipped JSONL email exports with mixed time-zone
offsets, mixed-case emails with stray spaces, and a few extra rows with bad
timestamps, missing ids and conflicting duplicates. Dirt is only ever *added*, so
the clean events and the truth stay aligned.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

__all__ = [
    "DRIVERS",
    "SALES_MEETINGS",
    "COUNTRIES",
    "FIRST",
    "FORMS",
    "FREE_MAIL",
    "INDUSTRIES",
    "LADDER",
    "LAST",
    "MISSABLE",
    "ROLES",
    "SUFFIX",
    "TITLES",
    "TRAFFIC",
    "WORDS",
    "GeneratorSpec",
    "generate_exports",
]

# How visitors arrive (share, referrer, utm_source, utm_medium, utm_campaign template):
# the mix a B2B site's analytics show, so that channel grouping has something to find.
TRAFFIC = (
    (0.22, "https://www.google.com/", None, None, None),                 # organic search
    (0.03, "https://www.bing.com/", None, None, None),
    (0.13, "https://www.google.com/", "google", "cpc", "search-brand-{quarter}"),
    (0.04, "https://www.bing.com/", "bing", "cpc", "search-generic-{quarter}"),
    (0.07, "https://www.linkedin.com/", None, None, None),               # organic social
    (0.07, "https://www.linkedin.com/", "linkedin", "paid_social", "abm-{quarter}"),
    (0.10, None, "newsletter", "email", "newsletter-{month}"),
    (0.07, "https://partner-network.example/", None, None, None),        # referral
    (0.04, "https://www.g2.com/", None, None, None),
    (0.04, "https://ads.example-display.net/", "display", "display", "retargeting-{quarter}"),
    (0.03, None, "trade_show", "event", "expo-{quarter}"),
    (0.16, None, None, None, None),                                      # direct
)

LADDER = (
    "awareness", "consideration", "evaluation", "decision",
    "client", "between_engagements", "advocacy", "former_client",
)
ROLES = ("initiator", "influencer", "decider", "buyer", "user")
INDUSTRIES = ("software", "manufacturing", "finance", "healthcare", "retail", "logistics",
              "education", "energy")
COUNTRIES = ("DE", "FR", "GB", "NL", "US", "ES", "IT", "SE")
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "gmx.de")
FIRST = ("anna", "ben", "carla", "david", "eva", "felix", "greta", "hugo", "ines", "jonas",
         "kim", "lena", "marc", "nora", "omar", "paula", "quentin", "rosa", "sven", "tara",
         "uli", "vera", "will", "xenia", "yusuf", "zoe")
LAST = ("meyer", "schmidt", "dubois", "martin", "smith", "jones", "rossi", "garcia", "jansen",
        "berg", "novak", "kowalski", "silva", "larsen", "weber", "moreau", "brown", "costa")
WORDS = ("acme", "nordic", "blue", "river", "summit", "quant", "vertex", "apex", "delta",
         "orbit", "pioneer", "harbor", "granite", "lumen", "cedar", "falcon", "atlas", "nova")
SUFFIX = ("systems", "labs", "group", "works", "solutions", "industries", "partners", "tech")
TITLES = {"initiator": "Operations Manager", "influencer": "IT Architect", "decider": "CFO",
          "buyer": "Procurement Lead", "user": "Analyst", None: None}
# Which form fills carry the visitor's email (contract: email is set on a form fill).
FORMS = {"form_submit", "content_download", "webinar_registration", "demo_request",
         "contact_sales"}
# Signals that go missing at random (never the milestones or form fills).
SALES_MEETINGS = {"meeting", "call", "demo"}
# What really moves accounts forward, known only to the generator (written to
# truth/drivers.json): the chance of going dormant while considering, with and without
# a webinar attended; the chance of winning a deal, with and without sales having met
# the decider. Everything else in the pre-sale journey has no effect on conversion.
DRIVERS = {
    "webinar_attended": {"step": "consideration -> evaluation", "effect": "dormancy",
                         "with": 0.10, "without": 0.34},
    "role:decider": {"step": "decision -> client", "effect": "deal won",
                     "with": 0.72, "without": 0.34},
}
# The actions that signal each pre-sale stage, per recording system (off-stage signals).
_ACTIONS = {
    ("web", "awareness"): ("page_view",),
    ("web", "consideration"): ("content_download", "webinar_registration", "form_submit",
                               "webinar_attended"),
    ("web", "evaluation"): ("pricing_view", "contact_sales"),
    ("crm", "evaluation"): ("meeting", "call", "demo"),
    ("crm", "decision"): ("proposal_sent", "negotiation"),
}
MISSABLE = {"page_view", "open", "click", "meeting", "call", "pricing_view", "webinar_attended"}


@dataclass(frozen=True)
class GeneratorSpec:
    """What to generate. The defaults make the committed sample (a few MB)."""

    n_accounts: int = 400
    seed: int = 7
    start: dt.date = dt.date(2023, 1, 1)
    end: dt.date = dt.date(2025, 6, 30)
    unknown_visitors: float = 0.3  # visitors from companies not in the CRM, per account
    dirt: bool = True
    # What makes stage inference hard: scripts/stage_scorecard.py scores every method on a
    # grid of these (README "Stage states"). The defaults make the committed sample.
    regress: float = 0.2  # chance an evaluation goes back to research (no lost deal)
    dwell: float = 1.0  # scale of the time between a stage's touchpoints (x0.5 .. x2)
    touches: float = 1.0  # scale of the number of touchpoints per stay (x0.5 .. x2)
    off_stage: float = 0.0  # share of a stay's actions that signal a neighbouring stage
    missing: float = 0.05  # share of missable signals that never reach an export
    skip: float = 0.12  # chance an aware account skips to evaluation (inbound demo request)
    renewal: float = 1.0  # share of returning clients who evaluate and decide again


@dataclass
class _Person:
    key: str
    account_id: str | None
    contact_id: str | None  # None: not a CRM contact
    email: str
    role: str | None
    devices: list[str]
    identified_devices: set[str] = field(default_factory=set)


@dataclass
class _Account:
    account_id: str
    name: str
    domain: str
    industry: str
    employees: int
    country: str
    created_at: dt.datetime
    health: float
    people: list[_Person] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # activities it really did (seen or not)
    met_roles: set[str] = field(default_factory=set)  # roles sales met (meeting/call/demo)


class _Simulation:
    def __init__(self, spec: GeneratorSpec):
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.t_start = dt.datetime.combine(spec.start, dt.time())
        self.t_end = dt.datetime.combine(spec.end, dt.time(23, 59))
        self.web: list[tuple] = []
        self.email: list[tuple] = []
        self.crm: list[tuple] = []
        self.truth: list[tuple] = []  # (source, source_id, account_id, person_key, stage)
        self.accounts: list[_Account] = []
        self.engagements: list[tuple] = []
        # The latent stage path: (account_id, stage, entered_at), one row per stay.
        self.stage_path: list[tuple] = []
        self._latest_stage: dict[str, str] = {}
        self.unknown: list[_Person] = []
        self.n_devices = 0
        self.n_opps = 0

    # -- helpers ---------------------------------------------------------------------
    def _pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def _days(self, mean: float) -> dt.timedelta:
        return dt.timedelta(days=float(self.rng.exponential(mean)))

    def _touches(self, low: int, high: int) -> int:
        """How many touchpoints a stay leaves: uniform in [low, high), scaled by `touches`."""
        n = int(self.rng.integers(low, high))
        return n if self.spec.touches == 1 else max(1, round(n * self.spec.touches))

    def _off_stage(self, activity: str, stage: str, channel: str) -> str:
        """With chance `off_stage`, an action that signals a neighbouring stage instead
        (a prospect in evaluation downloads a white paper; one in consideration looks at
        pricing): the latent stage stays, the signal points elsewhere."""
        if not self.spec.off_stage or self.rng.random() >= self.spec.off_stage:
            return activity
        k = LADDER.index(stage)
        neighbours = [s for s in LADDER[max(0, k - 1):k + 2]
                      if s != stage and _ACTIONS.get((channel, s))]
        if not neighbours:
            return activity
        return self._pick(_ACTIONS[(channel, self._pick(neighbours))])

    def _business_time(self, t: dt.datetime) -> dt.datetime:
        day = dt.datetime.combine(t.date(), dt.time())
        return day + dt.timedelta(hours=float(self.rng.uniform(7, 19)))

    def _device(self) -> str:
        self.n_devices += 1
        return f"anon-{self.n_devices:07d}-{int(self.rng.integers(16**6)):06x}"

    def _messy(self, email: str) -> str:
        """How people type emails into forms: sometimes capitalised, with stray spaces."""
        roll = self.rng.random()
        if roll < 0.15:
            return email.upper()
        if roll < 0.35:
            return email.title() + " "
        if roll < 0.45:
            return "  " + email
        return email

    def enter(self, account, stage: str, t: dt.datetime) -> None:
        """The account now *is* in `stage` (latent truth; what signals show may differ)."""
        if t > self.t_end:
            return
        if self._latest_stage.get(account.account_id) != stage:
            self._latest_stage[account.account_id] = stage
            self.stage_path.append((account.account_id, stage, t))

    def _missing(self, activity: str) -> bool:
        """Signals go missing at random: tracking blockers, unlogged calls, image-less mail."""
        return activity in MISSABLE and self.rng.random() < self.spec.missing

    def _traffic(self, t):
        """(referrer, utm_source, utm_medium, utm_campaign) of a visit, drawn from a mix
        like a B2B site's: search, paid search and social, newsletters, partners, review
        sites, display, events and direct visits; tagged links carry campaign names."""
        u = int(self.rng.integers(1000)) / 1000  # one bounded draw, as the seeded sample's
        cumulative = np.cumsum([mix[0] for mix in TRAFFIC])
        pick = min(int(np.searchsorted(cumulative, u, side="right")), len(TRAFFIC) - 1)
        _, referrer, source, medium, campaign = TRAFFIC[pick]
        quarter = f"q{(t.month - 1) // 3 + 1}-{t.year}"
        return (referrer, source, medium,
                campaign.format(quarter=quarter, month=f"{t:%Y-%m}") if campaign else None)

    # -- emitters ----------------------------------------------------------------------
    def web_event(self, t, account, person, activity, stage):
        if t > self.t_end:
            return
        if account is not None:
            account.done.add(activity)
        if self._missing(activity):
            return
        sid = f"w{len(self.web) + 1:08d}"
        # People mostly browse from one primary device; a second one now and then.
        device = person.devices[0] if self.rng.random() < 0.85 else self._pick(person.devices)
        email = None
        if activity in FORMS:
            email = self._messy(person.email)
            person.identified_devices.add(device)
        page = {"page_view": "/blog/" + self._pick(WORDS), "pricing_view": "/pricing"}.get(
            activity, "/" + activity.replace("_", "-"))
        referrer, utm_source, utm_medium, utm_campaign = self._traffic(t)
        self.web.append((sid, t, device, activity, email, "https://example.io" + page,
                         referrer, utm_source, utm_medium, utm_campaign))
        self.truth.append(("web_events", sid, account.account_id if account else None,
                           person.key, stage))

    def email_event(self, t, account, person, activity, stage, campaign):
        if t > self.t_end or self._missing(activity):
            return
        sid = f"m{len(self.email) + 1:08d}"
        self.email.append((sid, t, self._messy(person.email) if self.rng.random() < 0.2
                           else person.email, activity, campaign[0], campaign[1],
                           "https://example.io/c/" + campaign[0] if activity == "click" else None))
        self.truth.append(("email_events", sid, account.account_id if account else None,
                           person.key, stage))

    def crm_event(self, t, account, person, activity, stage, opp=None, amount=None, props=None):
        if t > self.t_end:
            return
        if person is not None and person.role and activity in SALES_MEETINGS:
            account.met_roles.add(person.role)
        if self._missing(activity):
            return
        sid = f"act{len(self.crm) + 1:07d}"
        self.crm.append((sid, t, account.account_id, person.contact_id if person else None, opp,
                         activity, amount, json.dumps(props) if props else None))
        self.truth.append(("crm_activities", sid, account.account_id,
                           person.key if person else None, stage))

    # -- accounts and people -----------------------------------------------------------
    def make_account(self, i: int) -> _Account:
        name = f"{self._pick(WORDS).title()} {self._pick(SUFFIX).title()} {i}"
        domain = name.lower().replace(" ", "-") + self._pick((".com", ".io", ".de", ".co.uk"))
        span = max(1, (self.t_end - self.t_start).days - 120)
        created = self.t_start + dt.timedelta(days=float(self.rng.uniform(0, span)))
        account = _Account(
            f"A{i:05d}", name, domain, self._pick(INDUSTRIES),
            int(min(50_000, self.rng.lognormal(5.5, 1.3)) + 5), self._pick(COUNTRIES), created,
            float(self.rng.normal()),
        )
        n_committee = int(self.rng.integers(2, 7))
        roles = ["initiator"] + [self._pick(ROLES) for _ in range(n_committee - 1)]
        for j, role in enumerate(roles):
            first, last = self._pick(FIRST), self._pick(LAST)
            # The account is in the CRM because someone there is known: the
            # initiator is always a contact with a work email.
            in_crm = j == 0 or self.rng.random() < 0.8
            free = j > 0 and self.rng.random() < 0.12
            local = f"{first}.{last}{j}{i}"
            email = f"{local}@{self._pick(FREE_MAIL) if free else domain}"
            devices = [self._device() for _ in range(1 + int(self.rng.random() < 0.3))]
            account.people.append(_Person(
                f"{account.account_id}-p{j}", account.account_id,
                f"C{i:05d}{j:02d}" if in_crm else None, email,
                role if in_crm else None, devices))
        return account

    # -- the journey -------------------------------------------------------------------
    def simulate(self, account: _Account) -> None:
        rng, spec = self.rng, self.spec
        t = account.created_at + self._days(20)
        people = account.people
        campaign_no = [0]

        def nurture(t0, t1, p_open, stage_weight=1.0):
            """Nurture emails to the committee between t0 and t1."""
            t = t0 + self._days(20)
            while t < min(t1, self.t_end):
                campaign_no[0] += 1
                campaign = (f"cmp-{t:%Y%m}-{campaign_no[0] % 4}", f"Newsletter {t:%b %Y}")
                for person in people:
                    # The initiator subscribed (that is how the account got into the
                    # CRM), so the first newsletter reaches and is opened by them.
                    welcome = campaign_no[0] == 1 and person is people[0]
                    if not welcome and rng.random() < 0.6:
                        continue
                    at = self._business_time(t)
                    self.email_event(at, account, person, "sent", None, campaign)
                    if not welcome and rng.random() < 0.03:
                        self.email_event(at, account, person, "bounce", None, campaign)
                        continue
                    self.email_event(at + dt.timedelta(seconds=30), account, person,
                                     "delivered", None, campaign)
                    if welcome or rng.random() < p_open:
                        at2 = at + self._days(1)
                        self.email_event(at2, account, person, "open", "awareness", campaign)
                        if rng.random() < 0.3 * stage_weight:
                            self.email_event(at2 + dt.timedelta(minutes=2), account, person,
                                             "click", "consideration", campaign)
                            if rng.random() < 0.1:
                                self.email_event(at2 + dt.timedelta(hours=5), account, person,
                                                 "reply", "consideration", campaign)
                    elif rng.random() < 0.01:
                        self.email_event(at + self._days(2), account, person, "unsubscribe",
                                         None, campaign)
                t += dt.timedelta(days=float(rng.uniform(30, 60)))

        def browse(t0, n, activities, stage, who=None):
            """n visits; each reads a few pages before the visit's own action."""
            t = t0
            for _ in range(n):
                t = self._business_time(t + self._days(6 * spec.dwell))
                # Past awareness, the people researching are mostly those already
                # engaged: the committee members who have filled a form.
                engaged = [p for p in people if p.identified_devices]
                if who is not None:
                    person = who
                elif stage != "awareness" and engaged and rng.random() < 0.9:
                    person = self._pick(engaged)
                else:
                    person = self._pick(people)
                activity = self._off_stage(self._pick(activities), stage, "web")
                for _ in range(int(rng.integers(0, 4)) if activity != "page_view" else 0):
                    self.web_event(t, account, person, "page_view", "awareness")
                    t += dt.timedelta(minutes=float(rng.uniform(0.5, 6)))
                self.web_event(t, account, person, activity, stage)
            return t

        def sales(t0, n, activities, stage, opp=None):
            t = t0
            contacts = [p for p in people if p.contact_id] or people
            for _ in range(n):
                t = self._business_time(t + self._days(8 * spec.dwell))
                self.crm_event(t, account, self._pick(contacts),
                               self._off_stage(self._pick(activities), stage, "crm"), stage,
                               opp=opp)
            return t

        # Awareness: anonymous research, nurture emails (which go on whatever the stage).
        self.enter(account, "awareness", t)
        t_end_nurture = t + dt.timedelta(days=int(rng.integers(90, 400)))
        nurture(t, t_end_nurture, p_open=0.45)
        t = browse(t, self._touches(2, 8), ("page_view",), "awareness")
        stage = "awareness"
        attempts = 0
        while stage in ("awareness", "consideration", "evaluation") and t < self.t_end:
            # Goes dormant at this stage; a webinar attended keeps a considering account
            # interested (a real driver, recorded in truth/drivers.json).
            dormancy = 0.22
            if stage == "consideration":
                dormancy = (DRIVERS["webinar_attended"]["with"] if "webinar_attended" in
                            account.done else DRIVERS["webinar_attended"]["without"])
            if rng.random() < dormancy:
                return
            if stage == "awareness":
                if rng.random() < spec.skip:  # skip: an inbound demo request
                    stage = "evaluation"
                    self.enter(account, stage,
                               self._business_time(t + self._days(6 * spec.dwell)))
                    t = browse(t, 1, ("demo_request",), "evaluation", who=people[0])
                    continue
                stage = "consideration"
                self.enter(account, stage, t + dt.timedelta(hours=1))
                t = browse(t, self._touches(1, 5),
                           ("content_download", "webinar_registration", "form_submit",
                            "page_view", "webinar_attended"), "consideration")
                t = browse(t, 1, ("form_submit", "content_download"), "consideration")
            elif stage == "consideration":
                if rng.random() < 0.25:  # loop: more research
                    t = browse(t, self._touches(1, 4),
                               ("page_view", "content_download", "webinar_attended"),
                               "consideration")
                    continue
                stage = "evaluation"
                self.enter(account, stage, t + dt.timedelta(hours=1))
                t = browse(t, self._touches(1, 3), ("pricing_view", "contact_sales"),
                           "evaluation")
            elif stage == "evaluation":
                t = sales(t, self._touches(1, 4), ("meeting", "call", "demo"), "evaluation")
                if rng.random() < spec.regress:  # back-step: back to research
                    stage = "consideration"
                    self.enter(account, stage, t + dt.timedelta(hours=1))
                    t = browse(t, 2, ("content_download", "page_view"), "consideration")
                    continue
                self.n_opps += 1
                opp = f"O{self.n_opps:06d}"
                self.enter(account, "decision", t + dt.timedelta(hours=1))
                t = sales(t, self._touches(1, 3), ("proposal_sent", "negotiation"),
                          "decision", opp=opp)
                attempts += 1
                # Deals are won more often when sales met the decider (a real driver).
                won = DRIVERS["role:decider"]["with" if "decider" in account.met_roles
                                              else "without"]
                if rng.random() < won:
                    t = self._business_time(t + self._days(10))
                    self.crm_event(t, account, people[0] if people[0].contact_id else None,
                                   "deal_won", "client", opp=opp,
                                   amount=round(float(rng.lognormal(10, 0.8)), 2))
                    self.enter(account, "client", t)
                    self.client_life(account, t, opp, nurture)
                    return
                t = self._business_time(t + self._days(10))
                self.crm_event(t, account, None, "deal_lost", "decision", opp=opp)
                if attempts >= 3 or rng.random() < 0.4:
                    return  # lost and gone
                stage = "consideration" if rng.random() < 0.5 else "evaluation"
                self.enter(account, stage, t + dt.timedelta(hours=1))
                t += self._days(60 * spec.dwell)
                nurture(t, t + dt.timedelta(days=120), p_open=0.5)

    def client_life(self, account: _Account, t_won: dt.datetime, opp: str, nurture) -> None:
        """Engagements, service, gaps, re-engagement, cancellation, advocacy.

        A cancellation is decided ahead (weekly hazard rising as health falls) and
        casts a shadow: in the ten weeks before it, support tickets pile up, NPS
        replies turn sour and visits to the website dry up, as they do in life.
        """
        rng = self.rng
        health = account.health
        contacts = [p for p in account.people if p.contact_id] or account.people[:1]
        engagement_no, t = 1, t_won
        cancel_hazard = 0.006 * math.exp(-1.1 * health)  # per week
        warning = dt.timedelta(days=70)

        def service_week(week, cancel_at):
            """One week of service signals; `cancel_at` within ten weeks darkens them."""
            shadow = cancel_at is not None and cancel_at - week < warning
            if rng.random() < 0.04 * math.exp(-0.8 * health) + (0.2 if shadow else 0):
                self.crm_event(self._business_time(week), account, self._pick(contacts),
                               "support_ticket", "client")
            if rng.random() < 0.02 + (0.1 if shadow else 0):
                mood = 7.5 + 1.8 * health - (3.5 if shadow else 0)
                score = int(np.clip(round(mood + rng.normal(0, 1.2)), 0, 10))
                self.crm_event(self._business_time(week), account, self._pick(contacts),
                               "nps_response", "client", props={"score": score})
            if rng.random() < 0.06 * math.exp(0.5 * health) * (0.2 if shadow else 1):
                self.web_event(self._business_time(week), account, self._pick(contacts),
                               self._pick(("page_view", "webinar_attended", "pricing_view")),
                               "awareness")
            # Clients meet sales too (account reviews): still clients.
            if rng.random() < 0.03:
                self.crm_event(self._business_time(week), account, self._pick(contacts),
                               self._pick(("meeting", "call")), "client")

        while t < self.t_end:
            start = t
            # Clients stay on the newsletter list: opens and clicks at every stage.
            nurture(start, start + dt.timedelta(days=300), p_open=0.3, stage_weight=0.5)
            t = self._business_time(t + self._days(7))
            self.crm_event(t, account, self._pick(contacts), "project_started", "client", opp=opp)
            project_end = t + dt.timedelta(days=float(rng.uniform(60, 300)))
            weeks_to_cancel = int(rng.geometric(min(cancel_hazard, 1.0)))
            cancel_at = t + dt.timedelta(days=7 * weeks_to_cancel)
            cancelled = self._business_time(cancel_at) if cancel_at < project_end else None
            week = t
            while week < (cancelled or project_end):
                week += dt.timedelta(days=7)
                if cancelled is None or week < cancelled:
                    service_week(week, cancelled)
            if cancelled:
                self.crm_event(cancelled, account, contacts[0], "cancellation", "former_client")
                self.enter(account, "former_client", cancelled)
                self.engagements.append((account.account_id, engagement_no, start, cancelled))
                return
            if rng.random() < 0.15:
                self.crm_event(self._business_time(project_end - self._days(20)), account,
                               contacts[0], self._pick(("upsell", "renewal")), "client", opp=opp)
            t = self._business_time(project_end)
            self.crm_event(t, account, contacts[0], "project_completed", "between_engagements")
            self.enter(account, "between_engagements", t)
            self.engagements.append((account.account_id, engagement_no, start,
                                     t if t <= self.t_end else None))
            if rng.random() < 0.25 * (1 + max(health, 0)):
                at = self._business_time(t + self._days(40))
                self.crm_event(at, account, contacts[0],
                               self._pick(("referral", "case_study")), "advocacy")
                self.enter(account, "advocacy", at)
            # Between engagements: back, gone (cancelled), or quiet. Decided now, so the
            # gap can show it: returning accounts keep visiting, leaving ones fall silent
            # and complain.
            gap_end = t + self._days(150)
            roll = rng.random()
            outcome = ("return" if roll < 0.45 + 0.1 * health
                       else "cancel" if roll < 0.6 - 0.1 * health else "quiet")
            browse_t = t
            while browse_t < gap_end:
                browse_t = self._business_time(browse_t + self._days(35))
                if outcome == "cancel" and gap_end - browse_t < warning:
                    if rng.random() < 0.5:
                        self.crm_event(browse_t, account, self._pick(contacts),
                                       "support_ticket", "client")
                    continue
                self.web_event(browse_t, account, self._pick(contacts),
                               self._pick(("page_view", "pricing_view", "webinar_attended")),
                               "awareness")
            if outcome == "return":
                t = self._business_time(gap_end)
                self.n_opps += 1
                opp = f"O{self.n_opps:06d}"
                # A renewal cycle: the client evaluates and decides on a new project
                # (unless renewals are automatic), then the next engagement starts.
                if self.spec.renewal >= 1 or rng.random() < self.spec.renewal:
                    self.enter(account, "evaluation", t)
                    self.crm_event(t, account, self._pick(contacts), "meeting", "evaluation",
                                   opp=opp)
                    t = self._business_time(t + self._days(14))
                    self.enter(account, "decision", t)
                    self.crm_event(t, account, self._pick(contacts), "proposal_sent",
                                   "decision", opp=opp)
                t = self._business_time(t + self._days(14))
                self.crm_event(t, account, contacts[0], "deal_won", "client", opp=opp,
                               amount=round(float(rng.lognormal(9.5, 0.7)), 2))
                self.enter(account, "client", t)
                engagement_no += 1
            elif outcome == "cancel":
                at = self._business_time(gap_end)
                self.crm_event(at, account, contacts[0], "cancellation", "former_client")
                self.enter(account, "former_client", at)
                return
            else:
                return

    def unknown_visitor(self, i: int) -> None:
        """A visitor from a company not in the CRM: never resolvable to an account."""
        domain = f"{self._pick(WORDS)}-{self._pick(SUFFIX)}-x{i}.com"
        email = f"{self._pick(FIRST)}.{self._pick(LAST)}{i}@" + (
            self._pick(FREE_MAIL) if self.rng.random() < 0.5 else domain)
        person = _Person(f"U{i:05d}", None, None, email, None, [self._device()])
        self.unknown.append(person)
        t = self.t_start + dt.timedelta(days=float(self.rng.uniform(0, 850)))
        for _ in range(int(self.rng.integers(1, 6))):
            t = self._business_time(t + self._days(5))
            activity = "form_submit" if self.rng.random() < 0.2 else "page_view"
            self.web_event(t, None, person, activity,
                           "consideration" if activity == "form_submit" else "awareness")

    def run(self) -> None:
        for i in range(1, self.spec.n_accounts + 1):
            account = self.make_account(i)
            self.accounts.append(account)
            self.simulate(account)
        for i in range(int(self.spec.n_accounts * self.spec.unknown_visitors)):
            self.unknown_visitor(i + 1)


# -- writing -------------------------------------------------------------------------

_WEB_COLUMNS = ["event_id", "occurred_at", "anonymous_id", "event_name", "email", "page_url",
                "referrer", "utm_source", "utm_medium", "utm_campaign"]
_EMAIL_COLUMNS = ["event_id", "occurred_at", "email", "event_type", "campaign_id",
                  "campaign_name", "url"]
_CRM_COLUMNS = ["activity_id", "occurred_at", "account_id", "contact_id", "opportunity_id",
                "activity_type", "amount", "properties"]


def _iso(ts: pd.Series, offset_hours: np.ndarray | None = None) -> pd.Series:
    """UTC timestamps as ISO-8601 text, with 'Z' or, where given, a local +hh:00 offset."""
    if offset_hours is None:
        return ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    local = ts + pd.to_timedelta(offset_hours, unit="h")
    suffix = pd.Series([f"+{int(h):02d}:00" if h else "Z" for h in offset_hours], index=ts.index)
    return local.dt.strftime("%Y-%m-%dT%H:%M:%S") + suffix


def _write(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, path: Path) -> None:
    con.register("_frame", frame)
    name = path.name
    if name.endswith(".parquet"):
        con.execute(f"COPY _frame TO '{path}' (FORMAT parquet)")
    elif name.endswith((".jsonl", ".jsonl.gz")):
        gz = ", COMPRESSION gzip" if name.endswith(".gz") else ""
        con.execute(f"COPY _frame TO '{path}' (FORMAT json{gz})")
    else:
        gz = ", COMPRESSION gzip" if name.endswith(".gz") else ""
        con.execute(f"COPY _frame TO '{path}' (FORMAT csv, HEADER{gz})")
    con.unregister("_frame")


def _dirty_rows(frame: pd.DataFrame, id_col: str, name_col: str, n: int,
                rng: np.random.Generator) -> pd.DataFrame:
    """Extra bad rows: bad timestamps, missing ids, conflicting duplicates (n of each)."""
    if frame.empty or n == 0:
        return frame.iloc[0:0]
    picks = frame.sample(n=min(3 * n, len(frame)), random_state=int(rng.integers(1 << 31)))
    bad_ts, no_id, conflict = (picks.iloc[k * n:(k + 1) * n].copy() for k in range(3))
    bad_ts[id_col] = bad_ts[id_col] + "-badts"
    bad_ts["occurred_at"] = ["not a date", "2024-02-30 10:00:00", "31/12/2024"] * (n // 3) + [
        "yesterday"] * (n % 3)
    no_id[id_col] = None
    conflict[name_col] = "conflicting_" + conflict[name_col].astype(str)
    return pd.concat([bad_ts, no_id, conflict])


def generate_exports(out_dir: str | Path, spec: GeneratorSpec | None = None) -> dict[str, int]:
    """Simulate journeys and write the five exports plus `truth/` into `out_dir`.

    Returns the number of clean rows per source (dirt not counted).
    """
    spec = spec or GeneratorSpec()
    out = Path(out_dir)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*")) + list((out / "truth").glob("*")):
        if old.is_file():
            old.unlink()
    sim = _Simulation(spec)
    sim.run()
    rng = np.random.default_rng(spec.seed + 1)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")

    accounts = pd.DataFrame(
        [(a.account_id, a.name, ("https://www." + a.domain) if i % 5 == 0 else a.domain,
          a.industry, a.employees, a.country, a.created_at.strftime("%Y-%m-%d"))
         for i, a in enumerate(sim.accounts)],
        columns=["account_id", "name", "domain", "industry", "employees", "country",
                 "created_at"])
    contacts = pd.DataFrame(
        [(p.contact_id, a.account_id, sim._messy(p.email), p.role.title() if p.role else None,
          TITLES[p.role], a.created_at.strftime("%Y-%m-%d"))
         for a in sim.accounts for p in a.people if p.contact_id],
        columns=["contact_id", "account_id", "email", "role", "title", "created_at"])
    web = pd.DataFrame(sim.web, columns=_WEB_COLUMNS).sort_values("occurred_at", kind="stable")
    email = pd.DataFrame(sim.email, columns=_EMAIL_COLUMNS).sort_values("occurred_at",
                                                                          kind="stable")
    crm = pd.DataFrame(sim.crm, columns=_CRM_COLUMNS).sort_values("occurred_at", kind="stable")

    _write(con, accounts, out / "crm_accounts.csv")
    _write(con, contacts, out / "crm_contacts.csv")

    # CRM activities: two exports that overlap by 30 days; naive timestamps in UTC.
    crm_out = crm.assign(occurred_at=crm["occurred_at"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    cut = spec.start + (spec.end - spec.start) / 2
    cut_ts = pd.Timestamp(cut)
    first = crm_out[crm["occurred_at"] < cut_ts + pd.Timedelta(days=30)]
    second = crm_out[crm["occurred_at"] >= cut_ts]
    n_dirt = max(1, len(crm) // 1000) if spec.dirt else 0
    second = pd.concat([second, _dirty_rows(crm_out, "activity_id", "activity_type", n_dirt, rng)])
    _write(con, first, out / "crm_activities_export_1.csv")
    _write(con, second, out / "crm_activities_export_2.csv")

    # Web: one file per month overlapping 3 days into the previous month; 10% of rows
    # carry a +01:00/+02:00 offset; the last two months come as Parquet with typed times.
    offsets = np.where(rng.random(len(web)) < 0.1, rng.integers(1, 3, len(web)), 0)
    web_out = web.assign(occurred_at=_iso(web["occurred_at"], offsets))
    months = pd.period_range(spec.start, spec.end, freq="M")
    n_dirt = max(1, len(web) // 1000) if spec.dirt else 0
    dirt = _dirty_rows(web_out, "event_id", "event_name", n_dirt, rng)
    for k, month in enumerate(months):
        lo = month.start_time - (pd.Timedelta(days=3) if spec.dirt and k else pd.Timedelta(0))
        hi = month.end_time
        part = web_out[(web["occurred_at"] >= lo) & (web["occurred_at"] <= hi)]
        if k == len(months) - 1:
            part = pd.concat([part, dirt])
        if k >= len(months) - 2:
            typed = web[(web["occurred_at"] >= lo) & (web["occurred_at"] <= hi)].copy()
            typed["occurred_at"] = typed["occurred_at"].dt.tz_localize("UTC")
            _write(con, typed, out / f"web_events_{month}.parquet")
            if k == len(months) - 1:
                _write(con, dirt, out / f"web_events_{month}-late.csv")
        else:
            gz = ".gz" if k % 2 else ""
            _write(con, part, out / f"web_events_{month}.csv{gz}")

    # Email: quarterly gzipped JSONL, a third of the rows with a local +02:00 offset.
    offsets = np.where(rng.random(len(email)) < 0.33, 2, 0)
    email_out = email.assign(occurred_at=_iso(email["occurred_at"], offsets))
    n_dirt = max(1, len(email) // 1000) if spec.dirt else 0
    dirt = _dirty_rows(email_out, "event_id", "event_type", n_dirt, rng)
    quarters = pd.period_range(spec.start, spec.end, freq="Q")
    for k, quarter in enumerate(quarters):
        part = email_out[(email["occurred_at"] >= quarter.start_time)
                         & (email["occurred_at"] <= quarter.end_time)]
        if k == len(quarters) - 1:
            part = pd.concat([part, dirt])
        _write(con, part, out / f"email_events_{quarter}.jsonl.gz")

    _write_truth(con, sim, out / "truth")
    return {"crm_accounts": len(accounts), "crm_contacts": len(contacts),
            "crm_activities": len(crm), "web_events": len(web), "email_events": len(email)}


def _write_truth(con: duckdb.DuckDBPyConnection, sim: _Simulation, out: Path) -> None:
    """Ground truth: identifier ownership, touchpoint ownership, accounts, engagements."""
    domains = {a.domain for a in sim.accounts}
    identities = []
    for person in [p for a in sim.accounts for p in a.people]:
        domain = person.email.split("@")[1]
        email_resolvable = person.contact_id is not None or domain in domains
        identities.append(("email", person.email, person.account_id, person.contact_id,
                           email_resolvable))
        for device in person.devices:
            identities.append(("anonymous_id", device, person.account_id, person.contact_id,
                               email_resolvable and device in person.identified_devices))
    for visitor in sim.unknown:
        identities.append(("email", visitor.email, None, None, False))
        identities.extend(("anonymous_id", d, None, None, False) for d in visitor.devices)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drivers.json").write_text(json.dumps(DRIVERS, indent=2) + "\n")
    _write(con, pd.DataFrame(identities, columns=["identifier_type", "identifier", "account_id",
                                                  "contact_id", "resolvable"]),
           out / "identities.csv")
    touchpoints = pd.DataFrame(sim.truth, columns=["source", "source_id", "account_id",
                                                   "person_key", "stage"])
    _write(con, touchpoints, out / "touchpoints.parquet")
    order = {s: i + 1 for i, s in enumerate(LADDER)}
    furthest = (touchpoints.dropna(subset=["stage", "account_id"])
                .assign(n=lambda f: f["stage"].map(order))
                .groupby("account_id")["n"].max())
    accounts = pd.DataFrame(
        [(a.account_id, a.domain, a.health,
          LADDER[int(furthest[a.account_id]) - 1] if a.account_id in furthest.index else None)
         for a in sim.accounts],
        columns=["account_id", "domain", "health", "furthest_stage"])
    _write(con, accounts, out / "accounts.csv")
    _write(con, pd.DataFrame(sim.stage_path, columns=["account_id", "stage", "entered_at"]),
           out / "stage_paths.csv")
    engagements = [e for e in sim.engagements if e[2] <= sim.t_end]
    _write(con, pd.DataFrame(engagements, columns=["account_id", "engagement_no",
                                                       "started_at", "ended_at"]),
           out / "engagements.csv")
