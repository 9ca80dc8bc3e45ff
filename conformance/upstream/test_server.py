"""Self-tests of the upstream: it must reject what the documents reject.

These sign requests with a signer written here from the same documents, so they prove the
verifier is consistent and strict; that the verifier agrees with a client written by other
hands is what the whole-pipeline run shows.
"""

import base64
import hashlib
import hmac
import json
import os
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import server

AK, SECRET = "testAccessKeyId", "testAccessKeySecret"
TOKEN = "vY5fwetestK3gJXZH5uHCw"


def pct(s):
    return quote(str(s), safe="-_.~")


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Upstream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ports = os.path.join(cls.tmp.name, "ports.json")
        cls.ledger = os.path.join(cls.tmp.name, "ledger.jsonl")
        t = threading.Thread(target=server.main, args=([
            "--ports-file", cls.ports, "--ledger", cls.ledger, "--ap-accounts", "12",
            "--max-per-page", "5", "--cams-qps", "3"],), daemon=True)
        t.start()
        for _ in range(200):
            if os.path.exists(cls.ports):
                break
            time.sleep(0.02)
        with open(cls.ports) as f:
            cls.urls = json.load(f)

    def http(self, url, data=None, headers=None, method=None):
        req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def v3(self, product, action, params, secret=SECRET, nonce=None, tamper=False):
        base = self.urls[product]
        host = base.split("//")[1]
        query = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items()))
        body = b""
        h = {"host": host, "x-acs-action": action,
             "x-acs-version": server.BSS_VERSION if product == "bss" else server.CAMS_VERSION,
             "x-acs-date": now(), "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
             "x-acs-content-sha256": hashlib.sha256(body).hexdigest()}
        signed = ";".join(sorted(h))
        canon_headers = "".join(f"{k}:{h[k]}\n" for k in sorted(h))
        canonical = "\n".join(["POST", "/", query, canon_headers, signed,
                               h["x-acs-content-sha256"]])
        sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
        h["Authorization"] = f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={signed},Signature={sig}"
        if tamper:
            query += "&Extra=1"
        del h["host"]
        return self.http(f"{base}/?{query}", data=body, headers=h, method="POST")

    def v2(self, product, action, params, fmt="JSON"):
        p = {"Action": action, "Version": server.BSS_VERSION if product == "bss" else server.CAMS_VERSION,
             "AccessKeyId": AK, "SignatureMethod": "HMAC-SHA1", "Timestamp": now(),
             "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex, **params}
        if fmt:
            p["Format"] = fmt
        canon = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(p.items()))
        sts = f"GET&{pct('/')}&{pct(canon)}"
        p["Signature"] = base64.b64encode(hmac.new((SECRET + "&").encode(), sts.encode(),
                                                   hashlib.sha1).digest()).decode()
        q = "&".join(f"{pct(k)}={pct(v)}" for k, v in p.items())
        return self.http(f"{self.urls[product]}/?{q}")

    def inject(self, ops):
        s, _, b = self.http(self.urls["control"] + "/inject", json.dumps(ops).encode(),
                            {"Content-Type": "application/json"})
        self.assertEqual(s, 200, b)
        return json.loads(b)

    # --- Alibaba ----------------------------------------------------------------------------
    def test_v3_signature_accepted_and_bad_rejected(self):
        s, _, b = self.v3("bss", "GetCustomerList", {})
        self.assertEqual(s, 200, b)
        self.assertIn(json.loads(b)["Code"], ("200", 200))
        s, _, b = self.v3("bss", "GetCustomerList", {}, secret="wrong")
        self.assertEqual((s, json.loads(b)["Code"]), (400, "SignatureDoesNotMatch"))
        s, _, b = self.v3("bss", "GetCustomerList", {}, tamper=True)
        self.assertEqual((s, json.loads(b)["Code"]), (400, "SignatureDoesNotMatch"))

    def test_v3_nonce_replay_rejected(self):
        self.assertEqual(self.v3("bss", "GetCustomerList", {}, nonce="n-1")[0], 200)
        s, _, b = self.v3("bss", "GetCustomerList", {}, nonce="n-1")
        self.assertEqual((s, json.loads(b)["Code"]), (400, "SignatureNonceUsed"))

    def test_v2_signature_and_default_xml(self):
        s, ctype, b = self.v2("bss", "GetCustomerAccountInfo", {"OwnerId": "6210322125051645960"})
        self.assertEqual(s, 200, b)
        self.assertEqual(json.loads(b)["Data"]["LoginEmail"], "xxxx@aliyun.com")
        s, ctype, b = self.v2("bss", "GetCustomerList", {}, fmt=None)
        self.assertEqual(s, 200)
        self.assertIn("xml", ctype)

    def test_documented_errors(self):
        s, _, b = self.v3("bss", "GetCustomerAccountInfo", {"OwnerId": "1"})
        self.assertEqual((s, json.loads(b)["Code"]), (401, "VnoNoDataError"))
        s, _, b = self.v3("bss", "CreateAgAccount", {"LoginEmail": "a@example.net"})
        self.assertEqual((s, json.loads(b)["Code"]), (400, "MissingParameter"))
        s, _, b = self.v3("cams", "QueryPhoneBusinessProfile", {"PhoneNumber": "8613800000"})
        self.assertEqual((s, json.loads(b)["Code"]), (400, "MissingParameter"))
        body = json.loads(b)
        for key in ("RequestId", "HostId", "Code", "Message"):
            self.assertIn(key, body)

    def test_create_then_duplicate(self):
        s, _, b = self.v3("bss", "CreateAgAccount", {"LoginEmail": "new@example.net", "AccountAttr": "1"})
        self.assertEqual(s, 200, b)
        pk = json.loads(b)["AgRelationDto"]["Pk"]
        s, _, b = self.v3("bss", "CreateAgAccount", {"LoginEmail": "new@example.net", "AccountAttr": "1"})
        body = json.loads(b)
        self.assertEqual((body["Code"], body["Success"], body["AgRelationDto"]["Pk"]),
                         ("LOGIN_EMAIL_HAS_BEEN_USED", True, pk))

    def test_cams_qps_is_per_access_key(self):
        codes = [self.v3("cams", "QueryChatappPhoneNumbers", {"CustSpaceId": "29348393884001"})[0]
                 for _ in range(12)]
        self.assertIn(400, codes)
        time.sleep(1.1)

    # --- ActivePlatform ---------------------------------------------------------------------
    def test_ap_paging_sorting_and_auth(self):
        base = self.urls["activeplatform"] + "/api/vendor/v1/accounts.json"
        self.assertEqual(self.http(f"{base}?api_token=bad&sorting[reversed]=false")[0], 401)
        self.assertEqual(self.http(f"{base}?api_token={TOKEN}")[0], 400)  # sorting[reversed]
        seen, page = [], 1
        while True:
            s, _, b = self.http(f"{base}?api_token={TOKEN}&page={page}&per_page=50"
                                "&sorting[field]=id&sorting[reversed]=false")
            self.assertEqual(s, 200)
            rows = json.loads(b)
            self.assertLessEqual(len(rows), 5)  # per_page is capped
            if not rows:
                break
            seen += [r["id"] for r in rows]
            page += 1
        self.assertEqual(seen, sorted(seen))
        self.assertIn(431, seen)

    def test_ap_single_and_ledger(self):
        got = self.inject({"op": "set", "provider": "activeplatform", "account": 431,
                           "fields": {"status": "active"}})
        self.assertEqual(got[0]["to"], "active")
        s, _, b = self.http(f"{self.urls['activeplatform']}/api/vendor/v1/accounts/431.json?api_token={TOKEN}")
        self.assertEqual(json.loads(b)["status"], "active")
        self.assertEqual(self.http(f"{self.urls['activeplatform']}/api/vendor/v1/accounts/9.json?api_token={TOKEN}")[0], 404)
        with open(self.ledger) as f:
            self.assertTrue(any(json.loads(l).get("field") == "status" for l in f))


if __name__ == "__main__":
    unittest.main()
