"""A hand-built set of exports: fourteen accounts, one rule each, numbers checked by eye.

| account | what it shows |
|---|---|
| A01 Acme     | form-fill back-fill: visitor v01 browses, then submits " Ann@ACME.com " |
|              | (contact C01); dropped at evaluation |
| A02 Beta     | domain match: bob@beta.io is no contact; domain given as https://www.beta.io |
| A03 Gamma    | free-mail contact: " Carl@GMail.com " is contact C03; dropped at awareness |
| A04 Delta    | lost, then won: an open engagement, current stage client |
| A05 Epsilon  | two engagements (gap 61 days), the second with an expansion deal |
| A06 Zeta     | cancellation after a support ticket and an NPS of 4; role "Champion" is other |
| A07 Eta      | dormancy: one email open, then nothing for > 90 days |
| A08 Theta    | lost deal, then an email open: back to consideration |
| A09 Iota     | advocacy: a case study after the project; a later NPS of 9 does not move it |
| A10 Kappa    | no touchpoints at all |
| A11 Lambda   | conflict: visitor v11 submitted lena@lambda.com twice and max@acme.com once |
| A12 Gmail Reseller | its domain is gmail.com, yet dave@gmail.com is never matched to it |
| A13/A14 Omega East/West | share omega.com, so oscar@omega.com is ambiguous and not matched |

Unresolved touchpoints: w99 (visitor never identified), m04 (dave@gmail.com),
m07 (oscar@omega.com): 3 of 41. As of 2025-06-30, dormancy 90 days (cut-off 2025-04-01).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.conftest import WEB_HEADER, write_csv

AS_OF = dt.datetime(2025, 6, 30)

ACCOUNTS = [
    "A01,Acme,acme.com", "A02,Beta,https://www.beta.io", "A03,Gamma,gamma.com",
    "A04,Delta,delta.com", "A05,Epsilon,epsilon.com", "A06,Zeta,zeta.com", "A07,Eta,eta.com",
    "A08,Theta,theta.com", "A09,Iota,iota.com", "A10,Kappa,kappa.com",
    "A11,Lambda,lambda.com", "A12,Gmail Reseller,gmail.com", "A13,Omega East,omega.com",
    "A14,Omega West,omega.com",
]
CONTACTS = [
    "C01,A01,ann@acme.com,Initiator", 'C03,A03," Carl@GMail.com ",decider',
    "C04,A04,dina@delta.com,buyer", "C05,A05,emil@epsilon.com,user",
    "C06,A06,zoe@zeta.com,Champion", "C07,A07,eve@eta.com,influencer",
    "C08,A08,theo@theta.com,decider", "C09,A09,ida@iota.com,initiator",
    "C11,A11,lena@lambda.com,initiator",
]
WEB = [
    "w01,2025-01-05T09:00:00Z,v01,page_view,",
    "w02,2025-01-06T09:00:00Z,v01,page_view,",
    'w03,2025-01-10T09:00:00Z,v01,form_submit," Ann@ACME.com "',
    "w04,2025-01-20T09:00:00Z,v01,pricing_view,",
    "w11,2025-03-01T09:00:00Z,v11,page_view,",
    "w12,2025-03-02T09:00:00Z,v11,form_submit,lena@lambda.com",
    "w13,2025-03-03T09:00:00Z,v11,form_submit,lena@lambda.com",
    "w14,2025-03-04T09:00:00Z,v11,webinar_registration,Max@Acme.com",
    "w15,2025-03-05T09:00:00Z,v11,pricing_view,",
    "w99,2025-03-01T09:00:00Z,v99,page_view,",
]
EMAIL = [
    "m01,2025-06-01T09:00:00Z,bob@beta.io,open",
    "m02,2025-06-01T09:05:00Z,bob@beta.io,click",
    "m03,2025-03-01T09:00:00Z,carl@gmail.com,open",
    "m04,2025-03-02T09:00:00Z,dave@gmail.com,open",
    "m05,2025-02-01T09:00:00Z,eve@eta.com,open",
    "m06,2025-06-10T09:00:00Z,theo@theta.com,open",
    "m07,2025-04-01T09:00:00Z,oscar@omega.com,click",
    "m09,2025-06-20T09:00:00Z,lena@lambda.com,open",
]
CRM = [
    "a401,2024-01-05 10:00:00,A04,Meeting,C04,",
    "a402,2024-02-01 10:00:00,A04,proposal_sent,C04,",
    "a403,2024-03-01 10:00:00,A04,deal_lost,,",
    "a404,2024-05-01 10:00:00,A04,meeting,C04,",
    "a405,2024-06-01 10:00:00,A04,Proposal Sent,C04,",
    "a406,2024-07-01 10:00:00,A04,Deal Won,C04,",
    "a407,2024-07-10 10:00:00,A04,project_started,C04,",
    "a501,2024-01-01 10:00:00,A05,deal_won,C05,",
    "a502,2024-04-01 10:00:00,A05,project_completed,C05,",
    "a503,2024-06-01 10:00:00,A05,deal_won,C05,",
    "a504,2024-07-01 10:00:00,A05,deal_won,C05,",
    "a505,2024-09-01 10:00:00,A05,project_completed,C05,",
    "a601,2024-02-01 10:00:00,A06,deal_won,C06,",
    "a602,2024-03-01 10:00:00,A06,support_ticket,C06,",
    'a603,2024-04-01 10:00:00,A06,nps_response,C06,"{""score"": 4}"',
    "a604,2024-05-01 10:00:00,A06,cancellation,C06,",
    "a801,2025-03-01 10:00:00,A08,meeting,C08,",
    "a802,2025-04-01 10:00:00,A08,proposal_sent,C08,",
    "a803,2025-05-01 10:00:00,A08,deal_lost,,",
    "a901,2024-03-01 10:00:00,A09,deal_won,C09,",
    "a902,2024-08-01 10:00:00,A09,project_completed,C09,",
    "a903,2024-09-01 10:00:00,A09,case_study,C09,",
    'a904,2024-10-01 10:00:00,A09,nps_response,C09,"{""score"": 9}"',
]


def write_journey_exports(folder: Path) -> Path:
    write_csv(folder, "crm_accounts.csv", "account_id,name,domain", *ACCOUNTS)
    write_csv(folder, "crm_contacts.csv", "contact_id,account_id,email,role", *CONTACTS)
    write_csv(folder, "web_events.csv", WEB_HEADER, *WEB)
    write_csv(folder, "email_events.csv", "event_id,occurred_at,email,event_type", *EMAIL)
    write_csv(folder, "crm_activities.csv",
              "activity_id,occurred_at,account_id,activity_type,contact_id,properties", *CRM)
    return folder


def built_journeys(folder: Path):
    """A warehouse with the fixture's exports loaded and built as of AS_OF."""
    from journey_mining import build, ingest, warehouse
    from journey_mining.config import AnalysisParams

    con = warehouse.connect()
    ingest.load_exports(con, write_journey_exports(folder))
    build.build(con, AnalysisParams(), as_of=AS_OF)
    return con
