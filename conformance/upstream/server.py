#!/usr/bin/env python3
"""An independent upstream for accountwatch, written from the providers' published documents.

It serves three providers on three loopback ports:

  * ActivePlatform vendor API v1: GET /api/vendor/v1/accounts.json and
    GET /api/vendor/v1/accounts/{id}.json (api_token in the query);
  * Alibaba Cloud BSS OpenAPI 2017-12-14 (RPC style): GetCustomerList,
    GetCustomerAccountInfo, CreateAgAccount;
  * Alibaba Cloud CAMS 2020-06-06 (RPC style): QueryChatappPhoneNumbers,
    QueryPhoneBusinessProfile;

and a fourth, the control port, where a test injects account changes and faults. Every
injection is appended to a ledger (JSON lines). README.md names, per behaviour, the document
it comes from. Standard library only.
"""

import argparse
import base64
import collections
import copy
import hashlib
import hmac
import json
import os
import random
import re
import sys
import threading
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit
from xml.sax.saxutils import escape as xml_escape

BSS_VERSION = "2017-12-14"
CAMS_VERSION = "2020-06-06"
BSS_ACTIONS = ("GetCustomerList", "GetCustomerAccountInfo", "CreateAgAccount")
CAMS_ACTIONS = ("QueryChatappPhoneNumbers", "QueryPhoneBusinessProfile")
AP_STATUSES = ("active", "administrative hold", "credit hold", "deleted")
# The platform's own time zone, as the document's examples show it (+03:00).
PLATFORM_TZ = timezone(timedelta(hours=3))
SKEW = timedelta(minutes=15)


def utcnow():
    return datetime.now(timezone.utc)


def iso(dt):
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def pct(s):
    """RFC 3986 percent-encoding as both Alibaba signature documents define it."""
    return quote(str(s), safe="-_.~")


class Fault:
    def __init__(self, spec, seq):
        self.provider = spec["provider"]
        self.action = spec.get("action", "*")
        self.kind = spec["kind"]
        self.count = spec.get("count")
        secs = spec.get("seconds")
        self.until = time.monotonic() + secs if secs else None
        self.delay = float(spec.get("delay", 0))
        self.seq = seq
        self.applied = 0
        if self.count is None and self.until is None:
            self.count = 1

    def live(self):
        if self.count is not None and self.applied >= self.count:
            return False
        if self.until is not None and time.monotonic() > self.until:
            return False
        return True

    def matches(self, provider, action):
        return self.provider == provider and self.action in ("*", action) and self.live()


class State:
    """Everything the upstream knows; one lock guards it all."""

    def __init__(self, seed_value, ledger_path, vary, legacy, max_per_page, default_sort,
                 strict_sorting, cams_qps):
        self.lock = threading.RLock()
        self.seed_value = seed_value
        self.vary = vary
        self.legacy = legacy
        self.max_per_page = max_per_page
        self.default_sort = default_sort
        self.strict_sorting = strict_sorting
        self.cams_qps = cams_qps
        self.ap = {}
        self.bss = {}
        self.cams = {}
        self.faults = []
        self.seq = 0
        self.counter = 0
        self.stats = collections.Counter()
        self.nonces = {}
        self.qps = collections.Counter()
        self.ap_tokens = set()
        self.keys = {}
        self.ledger_path = ledger_path
        self.ledger = open(ledger_path, "a", encoding="utf-8")

    # --- the ledger -------------------------------------------------------------------------
    def record(self, **entry):
        with self.lock:
            self.seq += 1
            entry = {"seq": self.seq, "at": iso(utcnow()), **entry}
            self.ledger.write(json.dumps(entry, sort_keys=True) + "\n")
            self.ledger.flush()
            return entry

    # --- shape variation ----------------------------------------------------------------------
    def tick(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def pick(self, n, dim, k, salt=""):
        """Choose one of n documented shapes for dimension dim of response k."""
        if not self.vary:
            return 0
        choice = zlib.crc32(f"{self.seed_value}/{k}/{dim}/{salt}".encode()) % n
        with self.lock:
            self.stats[f"shape.{dim}.{choice}"] += 1
        return choice

    def count(self, name):
        with self.lock:
            self.stats[name] += 1

    # --- faults -------------------------------------------------------------------------------
    def take_fault(self, provider, action):
        with self.lock:
            self.faults = [f for f in self.faults if f.live()]
            for f in self.faults:
                if f.matches(provider, action):
                    f.applied += 1
                    self.stats[f"fault.{provider}.{f.kind}"] += 1
                    return f
        return None

    # --- replay and pacing ------------------------------------------------------------------
    def nonce_used(self, nonce):
        now = time.monotonic()
        with self.lock:
            for n, exp in list(self.nonces.items()):
                if exp < now:
                    del self.nonces[n]
            if nonce in self.nonces:
                return True
            self.nonces[nonce] = now + 2 * SKEW.total_seconds()
            return False

    def over_qps(self, ak):
        """CAMS: 10 queries per second for each user (QueryPhoneBusinessProfile, Operation
        description). The user is the AccessKey's owner, so every connection that shares the
        AccessKey shares the budget. Windows are whole seconds."""
        sec = int(time.time())
        with self.lock:
            for key in [k for k in self.qps if k[1] < sec - 2]:
                del self.qps[key]
            self.qps[(ak, sec)] += 1
            return self.qps[(ak, sec)] > self.cams_qps


# ================================================================================================
# Seed data: the documents' own examples first, then filler so that listings page.
# ================================================================================================

def default_seed(n_ap, n_cams=0):
    ap = []
    # activeplatform-GetAccountInfoByID.txt, Response example (values as documented).
    ap.append({
        "id": 431, "name": "Jane Lane", "account_class_id": 1, "account_class": "Default",
        "primary_name": "", "first_name": "Jane", "middle_name": "", "last_name": "Lane",
        "country": "BY", "region": "minski", "city": "minsk", "street": "minsk",
        "building": "", "office": "", "zip": "220000", "phone": "+375291234567",
        "email": "test@example.com", "status": "credit hold", "balance": "453.2",
        "account_type_id": 1564, "account_type": "Personal", "default_payment_model": "prepay",
        "current_debt": "24.0", "financial_blocking_threshold_use_system": True,
        "financial_blocking_threshold": "100.0", "subscription_credit_limit_use_system": True,
        "subscription_credit_limit": "0.0", "manager_id": None, "owner_id": 23,
        "new_owner_first_name": None, "new_owner_last_name": None,
        "new_owner_middle_name": None, "new_owner_email": None, "tech_user_id": 23,
        "bill_user_id": 23,
        "custom_attributes": [
            {"name": "Personal number", "value": "A4411111BB1123"},
            {"name": "Birth date", "value": "10.08.2016"},
            {"name": "Issued", "value": "01.07.2016"},
            {"name": "Passport number", "value": "1124111111123"},
            {"name": "Issued by", "value": "Government"},
        ],
        "created_at": "2019-01-15T14:58:22.830+03:00",
        "updated_at": "2019-05-12T01:22:52.853+03:00",
    })
    rnd = random.Random(7)
    for i in range(n_ap):
        aid = 1000 + i
        status = AP_STATUSES[i % 3]  # active, administrative hold, credit hold
        postpay = i % 2 == 0
        ap.append({
            "id": aid, "name": f"Account {aid}", "account_class_id": 1 + i % 3,
            "account_class": ("Default", "Reseller", "Enterprise")[i % 3],
            "primary_name": f"Company {aid} LLC" if i % 4 == 0 else "",
            "first_name": "Ivan", "middle_name": "", "last_name": f"Petrov{i}",
            "country": ("BY", "RU", "KZ", "US")[i % 4], "region": "", "city": "Minsk",
            "street": "Nezavisimosti", "building": str(i), "office": "", "zip": "220000",
            "phone": "00375291234" + f"{i:03d}", "email": f"owner{aid}@example.com",
            "status": status,
            "balance": f"{rnd.randint(-50000, 90000) / 100:.2f}",
            "account_type_id": 1564, "account_type": "Business" if i % 4 == 0 else "Personal",
            "default_payment_model": "postpay" if postpay else "prepay",
            # A prepay account has no postpaid subscription, so its debt may be missing.
            "current_debt": f"{rnd.randint(0, 40000) / 100:.2f}" if postpay or i % 3 else None,
            "financial_blocking_threshold_use_system": i % 5 != 0,
            "financial_blocking_threshold": "100.0" if i % 7 else None,
            "subscription_credit_limit_use_system": True,
            "subscription_credit_limit": "0.0",
            "manager_id": 5 if i % 3 == 0 else None, "owner_id": 100 + i,
            "new_owner_first_name": None, "new_owner_last_name": None,
            "new_owner_middle_name": None, "new_owner_email": None,
            "tech_user_id": 100 + i, "bill_user_id": 100 + i,
            # "value: Depends on the attribute" -- every JSON type, free-text names.
            "custom_attributes": [
                {"name": "Tier", "value": ("gold", "silver", "bronze")[i % 3]},
                {"name": "Passport number", "value": f"MP{4000000 + i}"},
                {"name": "Credit score", "value": 600 + i},
                {"name": "VAT payer", "value": i % 2 == 0},
                {"name": "Fax", "value": None},
                {"name": "Discount ratio", "value": 0.25},
                {"name": "Tags", "value": ["b2b", f"region-{i % 4}"]},
                {"name": "Contract", "value": {"number": f"C-{aid}", "signed": "2020-02-02"}},
            ],
            "created_at": f"2020-0{1 + i % 9}-1{i % 10}T09:0{i % 10}:00.000+03:00",
            "updated_at": f"2021-0{1 + i % 9}-1{i % 10}T10:{10 + i % 50}:00.000+03:00",
        })
    bss = [
        # bss-GetCustomerAccountInfo.txt Sample success response; the uid from the public
        # GetCustomerList document's example.
        {"uid": "6210322125051645960", "LoginEmail": "xxxx@aliyun.com", "HostingStatus": "FREEZE",
         "AccountType": "1", "CreditLimitStatus": "Freeze", "IsCertified": True,
         "Mpk": 1051360339779133},
        {"uid": "1728240534507590", "LoginEmail": "member1@example.net",
         "HostingStatus": "TRUSTEESHIP", "AccountType": "0", "CreditLimitStatus": "Thaw",
         "IsCertified": True, "Mpk": 1051360339779133},
        {"uid": "9007199254740993", "LoginEmail": "member2@example.net",
         "HostingStatus": "TRUSTEESHIP", "AccountType": "1", "CreditLimitStatus": "Trusteeship",
         "IsCertified": False, "Mpk": 1051360339779133},
        # The older GetCustomerAccountInfo document (document_detail/143222) spells the hosted
        # state "Trusteeship" and shows Mpk as a string; one customer keeps that spelling.
        {"uid": "1234567890123456789", "LoginEmail": "legacy@example.net",
         "HostingStatus": "Trusteeship", "AccountType": "1", "CreditLimitStatus": "TrusteeshipCancel",
         "IsCertified": True, "Mpk": 1051360339779133},
    ]
    profile = {  # cams-QueryPhoneBusinessProfile.txt, Success response
        "Vertical": "Retail", "Description": "Description", "Email": "example@aliyun.com",
        "Address": "Changsha", "ProfilePictureUrl": "https://example.img",
        "Websites": ["https://alibaba.com"], "About": "business profile",
    }
    cams = {}
    spaces = (("29348393884001", ["8613800000", "8613800001"]),
              ("29348393884002", ["8613900000"]),
              ("29348393884003", ["8613700000"]))
    for k, (space, phones) in enumerate(spaces):
        phones += [f"86135{k}{i:05d}" for i in range(n_cams)]  # filler: load for the QPS limit
        cams[space] = {}
        for j, phone in enumerate(phones):
            p = copy.deepcopy(profile)
            if j:
                p.update({"Vertical": "Education", "Description": None, "Websites": [],
                          "About": "school"})
            # QueryChatappPhoneNumbers, Sample success response (Manage phone numbers).
            cams[space][phone] = {
                "UpQueue": "Alicom-Queue-****-ChatAppInbound", "PhoneNumber": phone,
                "StatusQueue": "Alicom-Queue-****-ChatAppStatus", "VerifiedName": "Alibaba",
                "StatusCallbackUrl": "https://ali.com/status",
                "UpCallbackUrl": "https://ali.com/inbound", "QualityRating": "GREEN",
                "Status": "CONNECTED", "CodeVerificationStatus": "VERIFIED",
                "NameStatus": "Approval", "MessagingLimitTier": "TIER_10",
                "NewNameStatus": "Approval", "profile": p,
            }
    return {"activeplatform": ap, "bss": bss, "cams": cams}


def load_seed(state, seed):
    for a in seed.get("activeplatform", []):
        state.ap[int(a["id"])] = copy.deepcopy(a)
    for c in seed.get("bss", []):
        c = copy.deepcopy(c)
        state.bss[str(c.pop("uid"))] = c
    for space, phones in seed.get("cams", {}).items():
        state.cams[space] = copy.deepcopy(phones)


# ================================================================================================
# Rendering: one canonical state, many documented shapes.
# ================================================================================================

MONEY_FIELDS = ("balance", "current_debt", "financial_blocking_threshold",
                "subscription_credit_limit")
CONTACT_STRINGS = ("primary_name", "middle_name", "region", "building", "office")


def render_money(value, form):
    """The Response model types these as float; the Response example sends balance as the
    string "453.2". Same value, four spellings."""
    if value is None:
        return None
    f = float(value)
    if form == 0:
        return f
    if form == 1:
        return int(f) if f == int(f) else f
    if form == 2:
        return value
    return f"{f:.2f}"


def render_date(text, form):
    dt = datetime.fromisoformat(text)
    if form == 0:
        return dt.astimezone(PLATFORM_TZ).isoformat(timespec="milliseconds")
    if form == 1:
        return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if form == 2:
        return dt.astimezone(timezone.utc).isoformat(timespec="seconds")
    return dt.astimezone(timezone(timedelta(hours=-5))).isoformat(timespec="milliseconds")


def render_ap(state, a, k):
    salt = str(a["id"])
    out = {}
    money = state.pick(4, "ap.money", k, salt)
    status_form = state.pick(2, "ap.status", k, salt)
    date_form = state.pick(4, "ap.date", k, salt)
    nulls = state.pick(2, "ap.nulls", k, salt)
    extra = state.pick(2, "ap.extra", k, salt)
    for key, value in a.items():
        if key in MONEY_FIELDS:
            value = render_money(value, money)
        elif key == "status":
            value = value.replace(" ", "_") if status_form else value
        elif key in ("created_at", "updated_at"):
            value = render_date(value, date_form)
        elif key in CONTACT_STRINGS and nulls and value == "":
            value = None
        out[key] = copy.deepcopy(value)
    if extra:
        # Fields the document does not list: a client must ignore them.
        out["reseller_id"] = 1
        out["language"] = "en"
        out["external_id"] = None
        out["x_flags"] = {"beta": True, "limits": [1, 2.5, "three", None]}
    return out


# ================================================================================================
# HTTP plumbing shared by the provider handlers.
# ================================================================================================

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "conformance-upstream/1"
    state = None  # set per server class

    def log_message(self, fmt, *args):  # quiet: the ledger and stats say what happened
        if os.environ.get("UPSTREAM_VERBOSE"):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, payload, content_type="application/json;charset=utf-8", headers=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def reset(self):
        """Close the connection without an answer (a transport fault)."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------
# ActivePlatform vendor API v1
# ------------------------------------------------------------------------------------------------

ACCOUNT_PATH = re.compile(r"^/api/vendor/v1/accounts/([^/]+)\.json$")


class ActivePlatform(Handler):
    def do_GET(self):
        st = self.state
        url = urlsplit(self.path)
        q = dict(parse_qsl(url.query, keep_blank_values=True))
        if url.path == "/api/vendor/v1/accounts.json":
            op = "list"
        elif ACCOUNT_PATH.match(url.path):
            op = "get"
        else:
            return self.send(404, {"error": "Not Found"})
        st.count(f"activeplatform.{op}")
        # API Token Authentication: v1 takes the manager's token as the api_token query arg.
        token = q.get("api_token")
        if not token or token not in st.ap_tokens:
            st.count("activeplatform.unauthorized")
            return self.send(401, {"error": "Unauthorized: invalid or missing api_token"})
        fault = st.take_fault("activeplatform", op)
        if fault and self.ap_fault(fault):
            return
        if op == "get":
            return self.get_one(ACCOUNT_PATH.match(url.path).group(1))
        return self.list(q)

    def transport_fault(self, f, truncated):
        """The faults every product answers alike: a slow answer (the request
        then goes on), a reset connection, a truncated JSON body. True when
        the answer was sent, False when the request goes on, None when f is
        none of them."""
        if f.kind == "slow":
            time.sleep(f.delay or 30)
            return False
        if f.kind == "reset":
            self.reset()
            return True
        if f.kind == "malformed":
            self.send(200, truncated, "application/json")
            return True
        return None

    def ap_fault(self, f):
        sent = self.transport_fault(f, b'[{"id": 431, "name": "Jane')
        if sent is not None:
            return sent
        status = {"http_500": 500, "http_502": 502, "http_503": 503, "throttle": 429,
                  "auth": 401}.get(f.kind)
        if status is None:
            return False
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        self.send(status, {"error": {500: "Internal Server Error", 502: "Bad Gateway",
                                     503: "Service Unavailable", 429: "Too Many Requests",
                                     401: "Unauthorized"}[status]}, headers=headers)
        return True

    def get_one(self, raw_id):
        st = self.state
        try:
            aid = int(raw_id)
        except ValueError:
            return self.send(404, {"error": "Not Found"})
        with st.lock:
            a = copy.deepcopy(st.ap.get(aid))
        if a is None:
            return self.send(404, {"error": f"Account {aid} not found"})
        k = st.tick()
        self.send(200, render_ap(st, a, k))

    def list(self, q):
        st = self.state
        # sorting[reversed] is marked Required in the Arguments table.
        if st.strict_sorting and "sorting[reversed]" not in q:
            st.count("activeplatform.list.missing_sorting_reversed")
            return self.send(400, {"error": "sorting[reversed] is required"})
        try:
            page = int(q.get("page") or 1)
            per_page = int(q.get("per_page") or 25)
        except ValueError:
            return self.send(400, {"error": "page and per_page must be integers"})
        if page < 1 or per_page < 1:
            return self.send(400, {"error": "page and per_page must be positive"})
        per_page = min(per_page, st.max_per_page)
        field = q.get("sorting[field]") or st.default_sort
        reversed_ = (q.get("sorting[reversed]") or "false").lower() == "true"
        with st.lock:
            accounts = [copy.deepcopy(a) for a in st.ap.values()]
        accounts = [a for a in accounts if self.keep(a, q)]

        def key(a):
            v = a.get(field)
            if field in MONEY_FIELDS and v is not None:
                v = float(v)
            if field in ("created_at", "updated_at"):
                v = datetime.fromisoformat(v)
            return (v is None, v if v is not None else 0, a["id"])

        try:
            accounts.sort(key=key, reverse=reversed_)
        except TypeError:
            accounts.sort(key=lambda a: (str(a.get(field)), a["id"]), reverse=reversed_)
        chunk = accounts[(page - 1) * per_page: page * per_page]
        k = st.tick()
        self.send(200, [render_ap(st, a, k) for a in chunk])

    @staticmethod
    def keep(a, q):
        s = q.get("filters[status]")
        if s and a["status"] != s.replace("_", " "):
            return False
        e = q.get("filters[email]")
        if e and (a.get("email") or "").lower() != e.lower():
            return False
        for f in ("created_at", "updated_at"):
            d = q.get(f"filters[{f}]")
            if d:
                day = datetime.fromisoformat(a[f]).astimezone(PLATFORM_TZ).date().isoformat()
                if day != d[:10]:
                    return False
        return True


# ------------------------------------------------------------------------------------------------
# Alibaba Cloud RPC (BSS OpenAPI and CAMS)
# ------------------------------------------------------------------------------------------------

class RPCError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def parse_ts(text):
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        raise RPCError(400, "InvalidTimeStamp.Format",
                       f"Specified time stamp or date value is not well formatted: {text!r}.")


def check_fresh(ts):
    now = utcnow()
    if ts < now - SKEW or ts > now + SKEW:
        raise RPCError(400, "InvalidTimeStamp.Expired",
                       "Specified time stamp or date value is expired.")


def raw_pairs(query):
    """Query string pairs, decoded the way an HTTP server decodes them."""
    pairs = []
    for part in query.split("&") if query else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((unquote_plus(k), unquote_plus(v)))
    return pairs


class Alibaba(Handler):
    product = None  # "bss" or "cams"

    def do_GET(self):
        self.rpc("GET")

    def do_POST(self):
        self.rpc("POST")

    def rpc(self, method):
        st = self.state
        url = urlsplit(self.path)
        body = self.body()
        want_xml = False
        action = "?"
        try:
            if url.path != "/":
                raise RPCError(404, "InvalidAction.NotFound",
                               "Specified api is not found, please check your url and method.")
            query = raw_pairs(url.query)
            form = []
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if body and ctype == "application/x-www-form-urlencoded":
                form = raw_pairs(body.decode("utf-8"))
            params = dict(query + form)
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("ACS3-HMAC-SHA256"):
                ak, action, version = self.verify_v3(method, url, query, body, auth)
                want_xml = (params.get("Format") or "JSON").upper() == "XML"
                st.count(f"{self.product}.sig.v3")
            elif "Signature" in params:
                ak, action, version = self.verify_v2(method, params)
                # RPC V2 common parameters: Format is optional and defaults to XML.
                want_xml = (params.get("Format") or "XML").upper() != "JSON"
                st.count(f"{self.product}.sig.v2")
            else:
                raise RPCError(400, "MissingParameter",
                               'The input parameter "Signature" that is mandatory for processing '
                               "this request is not supplied.")
            allowed, want_version = ((BSS_ACTIONS, BSS_VERSION) if self.product == "bss"
                                     else (CAMS_ACTIONS, CAMS_VERSION))
            if action not in allowed:
                raise RPCError(404, "InvalidAction.NotFound",
                               f"Specified api is not found, please check your url and method: {action}.")
            if version != want_version:
                raise RPCError(400, "InvalidVersion", "Specified parameter Version is not valid.")
            st.count(f"{self.product}.{action}")
            if self.product == "cams" and st.over_qps(ak):
                st.count("cams.throttled.qps")
                raise RPCError(400, "System.LimitControl", "The system is under flow control.")
            fault = st.take_fault(self.product, action)
            if fault:
                done = self.rpc_fault(fault, action, params)
                if done:
                    return
            result = getattr(self, "op_" + action)(params)
            status = 200
            if isinstance(result, tuple):
                status, result = result
            self.answer(status, action, result, want_xml)
        except RPCError as e:
            st.count(f"{self.product}.error.{e.code}")
            self.answer(e.status, action, self.error_body(e), want_xml, error=True)

    # --- signatures ---------------------------------------------------------------------------
    def secret(self, ak):
        secret = self.state.keys.get(ak)
        if secret is None:
            raise RPCError(404, "InvalidAccessKeyId.NotFound",
                           "Specified access key is not found.")
        return secret

    def verify_v3(self, method, url, query, body, auth):
        """Request syntax and signature method V3 (ACS3-HMAC-SHA256)."""
        m = re.match(r"^ACS3-HMAC-SHA256\s+Credential=([^,]+),\s*SignedHeaders=([^,]+),\s*"
                     r"Signature=([0-9a-fA-F]+)\s*$", auth)
        if not m:
            raise RPCError(400, "IncompleteSignature", "The request signature does not conform "
                           "to Aliyun standards.")
        ak, signed, signature = m.group(1), m.group(2), m.group(3).lower()
        secret = self.secret(ak)
        h = {k.lower(): v for k, v in self.headers.items()}
        for need in ("x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
                     "x-acs-content-sha256"):
            if need not in h:
                raise RPCError(400, "MissingParameter",
                               f'The input parameter "{need}" that is mandatory for processing '
                               "this request is not supplied.")
        signed_list = signed.split(";")
        # Every common request header present, except Authorization, must be signed.
        for must in ["host"] + [k for k in h if k.startswith("x-acs-")]:
            if must not in signed_list:
                raise RPCError(400, "IncompleteSignature",
                               f"The request signature does not conform to Aliyun standards: "
                               f"header {must} is not signed.")
        if signed_list != sorted(signed_list):
            raise RPCError(400, "IncompleteSignature",
                           "SignedHeaders must be sorted lowercase header names.")
        payload_hash = hashlib.sha256(body).hexdigest()
        if h["x-acs-content-sha256"].lower() != payload_hash:
            raise RPCError(400, "SignatureDoesNotMatch",
                           "x-acs-content-sha256 does not match the request body.")
        check_fresh(parse_ts(h["x-acs-date"]))
        canon_query = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(query))
        canon_headers = "".join(f"{name}:{h.get(name, '').strip()}\n" for name in signed_list)
        canonical = "\n".join([method, url.path or "/", canon_query, canon_headers, signed,
                               payload_hash])
        sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        want = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, signature):
            self.state.count(f"{self.product}.sig.bad")
            raise RPCError(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. "
                           f"server string to sign is:{sts}")
        if self.state.nonce_used(h["x-acs-signature-nonce"]):
            raise RPCError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        return ak, h["x-acs-action"], h["x-acs-version"]

    def verify_v2(self, method, params):
        """Request syntax and signature method V2 for RPC APIs (HMAC-SHA1)."""
        for need in ("Action", "Version", "AccessKeyId", "SignatureMethod", "Timestamp",
                     "SignatureVersion", "SignatureNonce"):
            if not params.get(need):
                raise RPCError(400, "MissingParameter",
                               f'The input parameter "{need}" that is mandatory for processing '
                               "this request is not supplied.")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise RPCError(400, "InvalidParameter",
                           "SignatureMethod must be HMAC-SHA1 and SignatureVersion 1.0.")
        secret = self.secret(params["AccessKeyId"])
        check_fresh(parse_ts(params["Timestamp"]))
        canon = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items())
                         if k != "Signature")
        sts = f"{method}&{pct('/')}&{pct(canon)}"
        want = base64.b64encode(hmac.new((secret + "&").encode(), sts.encode(),
                                         hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(want, params["Signature"]):
            self.state.count(f"{self.product}.sig.bad")
            raise RPCError(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. "
                           f"server string to sign is:{sts}")
        if self.state.nonce_used(params["SignatureNonce"]):
            raise RPCError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        return params["AccessKeyId"], params["Action"], params["Version"]

    # --- answers ------------------------------------------------------------------------------
    def request_id(self):
        return str(uuid.uuid4()).upper()

    def error_body(self, e):
        """The common error response: RequestId, HostId, Code, Message (and Recommend)."""
        return {"RequestId": self.request_id(), "HostId": self.headers.get("Host", ""),
                "Code": e.code, "Message": e.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={e.code}"}

    def answer(self, status, action, payload, xml, error=False):
        if not xml:
            return self.send(status, payload)
        root = "Error" if error else f"{action}Response"
        doc = "<?xml version='1.0' encoding='UTF-8'?>" + to_xml(root, payload)
        self.send(status, doc.encode(), "text/xml;charset=utf-8")

    def rpc_fault(self, f, action, params):
        """Faults injected through the control port; True when the answer was sent."""
        sent = self.transport_fault(f, b'{"Code": "OK", "RequestId": "')
        if sent is not None:
            return sent
        if f.kind == "create_then_fail" and action == "CreateAgAccount":
            try:
                self.op_CreateAgAccount(params)
            except RPCError:
                pass
            raise RPCError(500, "InternalError",
                           "The request processing has failed due to some unknown error.")
        if f.kind == "throttle_body":  # System.LimitControl inside an HTTP 200 answer
            self.send(200, {"RequestId": self.request_id(), "Code": "System.LimitControl",
                            "Message": "The system is under flow control.", "Success": False})
            return True
        errors = {
            "http_500": (500, "InternalError",
                         "The request processing has failed due to some unknown error."),
            "http_503": (503, "ServiceUnavailable",
                         "The request has failed due to a temporary failure of the server."),
        }
        if self.product == "bss":
            errors.update({
                "throttle": (400, "Throttling.User", "Request was denied due to user flow control."),
                "auth": (400, "NotAuthorized", "This API is not authorized for caller."),
                "nodata": (401, "VnoNoDataError", "There is no data by this request."),
                "ramaction": (402, "NotFoundRamAction",
                              f"Not found ramAction for apiActon: {action}"),
            })
        else:
            errors.update({
                "throttle": (400, "System.LimitControl", "The system is under flow control."),
                "auth": (400, "Ram.PermissionDeny", "You are not authorized to perform the operation."),
                "unsubscribed": (400, "Product.Unsubscript",
                                 "You have not subscribed to the specified product."),
                "owner": (400, "Unknown.ResourceOwnerId",
                          "The resource does not belong to the current user."),
            })
        if f.kind.startswith("business:"):  # CreateAgAccount business codes, HTTP 200
            code = f.kind.split(":", 1)[1]
            self.send(200, {"RequestId": self.request_id(), "Code": code,
                            "Message": code.replace("_", " ").lower(), "Success": False})
            return True
        if f.kind in errors:
            raise RPCError(*errors[f.kind])
        return False

    # --- BSS OpenAPI ------------------------------------------------------------------------
    def op_GetCustomerList(self, params):
        st = self.state
        k = st.tick()
        with st.lock:
            uids = list(st.bss.keys())
        if st.pick(2, "bss.list.order", k):
            uids.reverse()
        if st.pick(2, "bss.list.numeric", k):
            # The zh document (api-bssopenapi-2017-12-14-getcustomerlist) shows Code 200 and
            # the uids as JSON numbers; a long is sent exactly.
            return {"Code": 200, "Message": "Successful!", "RequestId": self.request_id(),
                    "Success": True, "Data": {"UidList": [int(u) for u in uids]}}
        return {"Code": "200", "Message": "Successful!", "RequestId": self.request_id(),
                "Success": True, "Data": {"UidList": uids}}

    def op_GetCustomerAccountInfo(self, params):
        st = self.state
        owner = params.get("OwnerId")
        if not owner:
            # document_detail/143222 lists OwnerId (Long, required): the customer to read.
            raise RPCError(400, "MissingParameter",
                           'The input parameter "OwnerId" that is mandatory for processing this '
                           "request is not supplied.")
        with st.lock:
            c = copy.deepcopy(st.bss.get(str(owner)))
        if c is None:
            raise RPCError(401, "VnoNoDataError", "There is no data by this request.")
        k = st.tick()
        data = {"Mpk": c["Mpk"], "LoginEmail": c["LoginEmail"], "HostingStatus": c["HostingStatus"],
                "AccountType": c["AccountType"], "CreditLimitStatus": c["CreditLimitStatus"],
                "IsCertified": c["IsCertified"]}
        if data["HostingStatus"].upper() == "TRUSTEESHIP" and st.pick(2, "bss.info.hosting", k, owner):
            # The current document spells the hosted state TRUSTEESHIP, document_detail/143222
            # Trusteeship: the same value.
            data["HostingStatus"] = ("TRUSTEESHIP", "Trusteeship")[
                data["HostingStatus"] == "TRUSTEESHIP"]
        if st.pick(2, "bss.info.mpk", k, owner):
            data["Mpk"] = str(c["Mpk"])  # document_detail/143222: "Mpk": "123******567"
        if st.pick(2, "bss.info.extra", k, owner):
            data["Uid"] = str(owner)
            data["Extra"] = {"note": None}
        return {"Code": "Success", "Message": "Successful!", "RequestId": self.request_id(),
                "Success": True, "Data": data}

    def op_CreateAgAccount(self, params):
        st = self.state
        for need in ("LoginEmail", "AccountAttr"):  # both Required: Yes
            if not params.get(need):
                raise RPCError(400, "MissingParameter",
                               f'The input parameter "{need}" that is mandatory for processing '
                               "this request is not supplied.")
        email = params["LoginEmail"]
        mpk = "1785287436011964"
        with st.lock:
            existing = [u for u, c in st.bss.items() if c["LoginEmail"].lower() == email.lower()]
            if existing:
                pk = existing[0]
                st.count("bss.create.duplicate")
                # The document's own sample: Success true, Code LOGIN_EMAIL_HAS_BEEN_USED.
                return {"Code": "LOGIN_EMAIL_HAS_BEEN_USED",
                        "Message": f"loginEmail={email},has used",
                        "RequestId": self.request_id(), "Success": True,
                        "AgRelationDto": {"Type": "FINACE_CLOUD", "Pk": pk,
                                          "RamAdminRoleName": "admin-role", "Mpk": mpk}}
            pk = str(random.Random(email).randint(10**15, 10**16 - 1))
            while pk in st.bss:
                pk = str(int(pk) + 1)
            st.bss[pk] = {"LoginEmail": email, "HostingStatus": "TRUSTEESHIP",
                          "AccountType": params["AccountAttr"], "CreditLimitStatus": "Thaw",
                          "IsCertified": False, "Mpk": int(mpk)}
        st.record(op="add", provider="bss", account=pk, source="CreateAgAccount",
                  fields={"LoginEmail": email})
        k = st.tick()
        if st.legacy and st.pick(3, "bss.create.shape", k) == 2:
            # document_detail/143220 (older): lower-case code/data keys.
            return {"code": "SUCCESS",
                    "data": {"AgRelationDto": {"Mpk": mpk, "Type": "BID", "Pk": pk}}}
        code = ("SUCCESS", "Success", "200")[st.pick(3, "bss.create.code", k)]
        return {"Code": code, "Message": "Successful!", "RequestId": self.request_id(),
                "Success": True,
                "AgRelationDto": {"Type": "FINACE_CLOUD", "Pk": pk,
                                  "RamAdminRoleName": "admin-role", "Mpk": mpk}}

    # --- CAMS ---------------------------------------------------------------------------------
    def op_QueryChatappPhoneNumbers(self, params):
        st = self.state
        space = params.get("CustSpaceId") or ""  # optional: the caller's own space when absent
        status = params.get("Status")
        k = st.tick()
        with st.lock:
            phones = copy.deepcopy(list(st.cams.get(space, {}).values()))
        out = []
        for p in phones:
            p.pop("profile", None)
            if status and status.upper() not in (p.get("Status", "").upper(),
                                                 p.get("CodeVerificationStatus", "").upper()):
                continue
            if st.pick(2, "cams.numbers.nulls", k, p["PhoneNumber"]):
                for f in ("UpCallbackUrl", "StatusCallbackUrl", "UpQueue", "StatusQueue"):
                    if p.get(f) == "":
                        p[f] = None
            if st.pick(2, "cams.numbers.extra", k, p["PhoneNumber"]):
                p["WabaId"] = "1234567890"
                p["Throughput"] = {"Level": "STANDARD"}
            out.append(p)
        # The QueryChatappPhoneNumbers response has RequestId, Code, Message, PhoneNumbers:
        # no Success field.
        return {"RequestId": self.request_id(), "Code": "OK", "Message": "SUCCESS",
                "PhoneNumbers": out}

    def op_QueryPhoneBusinessProfile(self, params):
        st = self.state
        for need in ("CustSpaceId", "PhoneNumber"):  # both Required: Yes
            if not params.get(need):
                raise RPCError(400, "MissingParameter",
                               f'The input parameter "{need}" that is mandatory for processing '
                               "this request is not supplied.")
        with st.lock:
            phone = copy.deepcopy(st.cams.get(params["CustSpaceId"], {}).get(params["PhoneNumber"]))
        if phone is None:
            raise RPCError(400, "Unknown.ResourceOwnerId",
                           "The resource does not belong to the current user.")
        k = st.tick()
        salt = params["PhoneNumber"]
        data = {}
        absent = st.pick(2, "cams.profile.absent", k, salt)
        for key, value in phone["profile"].items():
            if key == "Websites" and not value:
                value = None if st.pick(2, "cams.profile.websites", k, salt) else []
            if value is None and absent:
                continue  # a missing value: null or left out
            data[key] = value
        answer = {"AccessDeniedDetail": "None", "Message": "None", "RequestId": self.request_id(),
                  "Data": data, "Code": "OK", "Success": True}
        form = st.pick(3, "cams.profile.denied", k, salt)
        if form == 1:
            answer["AccessDeniedDetail"] = None
        elif form == 2:
            del answer["AccessDeniedDetail"]
        if st.pick(2, "cams.profile.extra", k, salt):
            data["Category"] = None
            answer["Extra"] = [1, "two"]
        return answer


def to_xml(tag, value):
    if isinstance(value, dict):
        inner = "".join(to_xml(k, v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(to_xml(tag[:-4] if tag.endswith("List") else "item", v) for v in value)
    elif value is None:
        inner = ""
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = xml_escape(str(value))
    return f"<{tag}>{inner}</{tag}>"


# ------------------------------------------------------------------------------------------------
# The control port
# ------------------------------------------------------------------------------------------------

AP_MUTABLE = set(default_seed(1)["activeplatform"][0].keys()) - {"id", "created_at", "updated_at"}
BSS_MUTABLE = {"LoginEmail", "HostingStatus", "AccountType", "CreditLimitStatus", "IsCertified"}
CAMS_NUMBER_MUTABLE = {"Status", "QualityRating", "VerifiedName", "CodeVerificationStatus",
                       "NameStatus", "MessagingLimitTier", "NewNameStatus"}
CAMS_PROFILE_MUTABLE = {"Vertical", "Description", "Email", "Address", "ProfilePictureUrl",
                        "Websites", "About"}


class Control(Handler):
    """Loopback-only control: POST /inject, POST /faults/clear, GET /state|/stats|/ledger."""

    def do_GET(self):
        st = self.state
        path = urlsplit(self.path).path
        if path == "/health":
            return self.send(200, {"ok": True})
        if path == "/stats":
            with st.lock:
                return self.send(200, dict(st.stats))
        if path == "/state":
            with st.lock:
                return self.send(200, {"activeplatform": list(st.ap.values()),
                                       "bss": [{"uid": u, **c} for u, c in st.bss.items()],
                                       "cams": st.cams})
        if path == "/ledger":
            with open(st.ledger_path, encoding="utf-8") as f:
                return self.send(200, [json.loads(line) for line in f if line.strip()])
        self.send(404, {"error": "not found"})

    def do_POST(self):
        st = self.state
        path = urlsplit(self.path).path
        try:
            req = json.loads(self.body() or b"{}")
        except ValueError as e:
            return self.send(400, {"error": f"body is not JSON: {e}"})
        try:
            if path == "/inject":
                ops = req if isinstance(req, list) else [req]
                return self.send(200, [e for op in ops for e in self.inject(op)])
            if path == "/faults/clear":
                with st.lock:
                    n = len([f for f in st.faults if f.live()])
                    st.faults = []
                return self.send(200, [st.record(op="clear_faults", cleared=n)])
        except (KeyError, ValueError, TypeError) as e:
            return self.send(400, {"error": f"bad injection: {e!r}"})
        self.send(404, {"error": "not found"})

    def inject(self, op):
        st = self.state
        kind = op["op"]
        prov = op.get("provider")
        if kind == "fault":
            entry = st.record(op="fault", provider=prov, action=op.get("action", "*"),
                              kind=op["kind"], count=op.get("count"), seconds=op.get("seconds"))
            with st.lock:
                st.faults.append(Fault(op, entry["seq"]))
            return [entry]
        with st.lock:
            if prov == "activeplatform":
                return self.inject_ap(kind, op)
            if prov == "bss":
                return self.inject_bss(kind, op)
            if prov == "cams":
                return self.inject_cams(kind, op)
        raise ValueError(f"unknown provider {prov!r}")

    def inject_ap(self, kind, op):
        st = self.state
        now = datetime.now(PLATFORM_TZ).isoformat(timespec="milliseconds")
        if kind == "add":
            a = copy.deepcopy(op["account"])
            aid = int(a["id"])
            if aid in st.ap:
                raise ValueError(f"account {aid} exists")
            template = copy.deepcopy(st.ap.get(431) or default_seed(0)["activeplatform"][0])
            template.update(a)
            template.update({"id": aid, "created_at": now, "updated_at": now})
            st.ap[aid] = template
            return [st.record(op="add", provider="activeplatform", account=str(aid))]
        aid = int(op["account"])
        if aid not in st.ap:
            raise ValueError(f"no account {aid}")
        if kind == "remove":
            del st.ap[aid]
            return [st.record(op="remove", provider="activeplatform", account=str(aid))]
        if kind != "set":
            raise ValueError(f"unknown op {kind!r}")
        out = []
        for field, value in op["fields"].items():
            if field not in AP_MUTABLE:
                raise ValueError(f"field {field!r} is not in the response model")
            if field == "status" and value.replace("_", " ") not in AP_STATUSES:
                raise ValueError(f"status {value!r} is not documented")
            if field == "status":
                value = value.replace("_", " ")
            old = st.ap[aid].get(field)
            st.ap[aid][field] = value
            out.append(st.record(op="set", provider="activeplatform", account=str(aid),
                                 field=field, **{"from": old, "to": value}))
        st.ap[aid]["updated_at"] = now
        return out

    def inject_bss(self, kind, op):
        st = self.state
        if kind == "add":
            c = copy.deepcopy(op["account"])
            uid = str(c.pop("uid"))
            base = {"LoginEmail": f"{uid}@example.net", "HostingStatus": "TRUSTEESHIP",
                    "AccountType": "1", "CreditLimitStatus": "Thaw", "IsCertified": True,
                    "Mpk": 1051360339779133}
            base.update(c)
            st.bss[uid] = base
            return [st.record(op="add", provider="bss", account=uid)]
        uid = str(op["account"])
        if uid not in st.bss:
            raise ValueError(f"no customer {uid}")
        if kind == "remove":
            del st.bss[uid]
            return [st.record(op="remove", provider="bss", account=uid)]
        out = []
        for field, value in op["fields"].items():
            if field not in BSS_MUTABLE:
                raise ValueError(f"field {field!r} is not in the Data object")
            old = st.bss[uid][field]
            st.bss[uid][field] = value
            out.append(st.record(op="set", provider="bss", account=uid, field=field,
                                 **{"from": old, "to": value}))
        return out

    def inject_cams(self, kind, op):
        st = self.state
        space = op["space"]
        phones = st.cams.setdefault(space, {})
        if kind == "add":
            p = copy.deepcopy(op["number"])
            num = p["PhoneNumber"]
            base = copy.deepcopy(next(iter(next(iter(default_seed(0)["cams"].values())).values())))
            base.update(p)
            base["profile"] = {**base["profile"], **p.get("profile", {})}
            phones[num] = base
            return [st.record(op="add", provider="cams", space=space, account=num)]
        num = op["account"]
        if num not in phones:
            raise ValueError(f"no number {num} in space {space}")
        if kind == "remove":
            del phones[num]
            return [st.record(op="remove", provider="cams", space=space, account=num)]
        out = []
        for field, value in op["fields"].items():
            if field in CAMS_PROFILE_MUTABLE:
                target = phones[num]["profile"]
            elif field in CAMS_NUMBER_MUTABLE:
                target = phones[num]
            else:
                raise ValueError(f"field {field!r} is not in either CAMS response")
            old = target.get(field)
            target[field] = value
            out.append(st.record(op="set", provider="cams", space=space, account=num,
                                 field=field, **{"from": old, "to": value}))
        return out


# ================================================================================================

def serve(cls, state, host, port):
    handler = type(cls.__name__, (cls,), {"state": state})
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--ap-port", type=int, default=0)
    p.add_argument("--bss-port", type=int, default=0)
    p.add_argument("--cams-port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--ports-file", help="write the chosen base URLs here as JSON")
    p.add_argument("--ledger", default="ledger.jsonl")
    p.add_argument("--seed", help="initial state as JSON (default: the documents' examples)")
    p.add_argument("--ap-accounts", type=int, default=30, help="filler accounts in the default seed")
    p.add_argument("--cams-numbers", type=int, default=0,
                   help="filler numbers per CAMS space in the default seed")
    p.add_argument("--ap-token", action="append", default=[], help="valid api_token (repeat)")
    p.add_argument("--access-key", action="append", default=[], help="AK:SECRET (repeat)")
    p.add_argument("--shape-seed", default="1", help="seed of the shape variation")
    p.add_argument("--no-vary", action="store_true", help="always serve the first shape")
    p.add_argument("--legacy-shapes", action="store_true",
                   help="also serve the older documents' CreateAgAccount shape")
    p.add_argument("--max-per-page", type=int, default=100)
    p.add_argument("--default-sort", default="updated_at",
                   help="order of a listing without sorting[field] (undocumented)")
    p.add_argument("--lenient-sorting", action="store_true",
                   help="do not require sorting[reversed]")
    p.add_argument("--cams-qps", type=int, default=10)
    args = p.parse_args(argv)

    state = State(args.shape_seed, args.ledger, not args.no_vary, args.legacy_shapes,
                  args.max_per_page, args.default_sort, not args.lenient_sorting, args.cams_qps)
    state.ap_tokens = set(args.ap_token or ["vY5fwetestK3gJXZH5uHCw"])
    for pair in args.access_key or ["testAccessKeyId:testAccessKeySecret"]:
        ak, _, secret = pair.partition(":")
        state.keys[ak] = secret
    if args.seed:
        with open(args.seed, encoding="utf-8") as f:
            load_seed(state, json.load(f))
    else:
        load_seed(state, default_seed(args.ap_accounts, args.cams_numbers))
    state.record(op="seed", activeplatform=sorted(str(i) for i in state.ap),
                 bss=sorted(state.bss), cams={s: sorted(p) for s, p in state.cams.items()})

    servers = {
        "activeplatform": serve(ActivePlatform, state, args.host, args.ap_port),
        "bss": serve(type("BSS", (Alibaba,), {"product": "bss"}), state, args.host, args.bss_port),
        "cams": serve(type("CAMS", (Alibaba,), {"product": "cams"}), state, args.host,
                      args.cams_port),
        "control": serve(Control, state, args.host, args.control_port),
    }
    urls = {name: f"http://{args.host}:{s.server_address[1]}" for name, s in servers.items()}
    if args.ports_file:
        tmp = args.ports_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(urls, f)
        os.replace(tmp, args.ports_file)
    print(json.dumps(urls), flush=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        import signal
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    for s in servers.values():
        s.shutdown()


if __name__ == "__main__":
    main()
