#!/usr/bin/env python3
"""tests/aws/standin.py - a stand-in for the parts of AWS slipway talks to:
STS (AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity signed or
presigned), EKS DescribeCluster, the Price List Query API (GetProducts from
--prices), Cost Explorer (GetCostAndUsage from
--costs), EC2 instance metadata (IMDSv2 only) and the EKS Pod Identity
agent. It checks every signed request with its own SigV4
(hmac and hashlib here, nothing of slipway's), refuses what AWS refuses
(unknown keys, bad signatures, expired temporary credentials, a clock more
than 5 minutes off, expired presigned URLs) the way AWS answers, and writes
one JSON line per request to --out.

    standin.py --port 0 --out requests.jsonl --key AKIDBASE:SECRET \\
        [--role arn:aws:iam::111122223333:role/slipway] [--web-token-file F] \\
        [--pod-token TOKEN] [--ttl SECONDS] [--cluster NAME=ENDPOINT=CA_B64 | NAME=@FILE]...

It prints the port it bound and serves until killed. Every temporary key it
hands out (AssumeRole*, IMDS, Pod Identity) is one it will then accept in
signatures, until --ttl seconds after it was issued.
"""
import argparse
import datetime
import hashlib
import hmac
import http.server
import json
import secrets
import sys
import threading
import time
import urllib.parse

SKEW_S = 300
LOCK = threading.Lock()
KEYS = {}      # access key id -> (secret, session token or None, expires epoch or None)
ARGS = None
OUT = None
IMDS_TOKENS = set()


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(entry):
    with LOCK:
        OUT.write(json.dumps(entry) + "\n")
        OUT.flush()


def issue(prefix):
    kid = prefix + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    token = secrets.token_urlsafe(60)
    exp = int(time.time()) + ARGS.ttl
    with LOCK:
        KEYS[kid] = (secret, token, exp)
    return kid, secret, token, exp


# --- SigV4, written from AWS's description ---------------------------------

def enc(s, safe):
    return urllib.parse.quote(s, safe=safe)


def canonical_path(raw):
    # AWS (not S3) normalizes the path and encodes it as sent, once more
    segs = []
    for seg in raw.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    path = "/" + "/".join(segs)
    if raw.endswith("/") and path != "/":
        path += "/"
    return enc(path, "/-_.~")


def canonical_query(pairs):
    items = sorted((enc(k, "-_.~"), enc(v, "-_.~")) for k, v in pairs)
    return "&".join(k + "=" + v for k, v in items)


def derive(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def verify(method, raw_path, query_pairs, headers, body, service):
    """(access key id, None) when the request is signed right, else (kid, (status, code, message))."""
    auth = headers.get("authorization")
    presigned = any(k == "X-Amz-Signature" for k, _ in query_pairs)
    q = dict(query_pairs)
    if auth:
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return None, (400, "IncompleteSignature", "Authorization is not AWS4-HMAC-SHA256")
        fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        cred, signed, sig = fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")
        amzdate = headers.get("x-amz-date")
        token = headers.get("x-amz-security-token")
        pairs = query_pairs
    elif presigned:
        cred, signed, sig = q.get("X-Amz-Credential"), q.get("X-Amz-SignedHeaders"), q.get("X-Amz-Signature")
        amzdate = q.get("X-Amz-Date")
        token = q.get("X-Amz-Security-Token")
        if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return None, (400, "IncompleteSignature", "X-Amz-Algorithm is not AWS4-HMAC-SHA256")
        pairs = [(k, v) for k, v in query_pairs if k != "X-Amz-Signature"]
    else:
        return None, (403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    if not cred or not signed or not sig or not amzdate:
        return None, (400, "IncompleteSignature", "the signature lacks Credential, SignedHeaders, Signature or a date")
    parts = cred.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return None, (400, "IncompleteSignature", "Credential is not KEY/DATE/REGION/SERVICE/aws4_request")
    kid, date, region, svc = parts[0], parts[1], parts[2], parts[3]
    with LOCK:
        known = KEYS.get(kid)
    if not known:
        return kid, (403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    secret, want_token, exp = known
    if svc != service:
        return kid, (403, "SignatureDoesNotMatch", "Credential should be scoped to correct service: '%s'." % service)
    try:
        t = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return kid, (400, "IncompleteSignature", "X-Amz-Date is not YYYYMMDDTHHMMSSZ")
    if not amzdate.startswith(date):
        return kid, (403, "SignatureDoesNotMatch", "Credential should be scoped to a valid date")
    now = time.time()
    if presigned:
        try:
            expires = int(q.get("X-Amz-Expires", "0"))
        except ValueError:
            expires = -1
        if expires < 1 or expires > 604800:
            return kid, (400, "AuthorizationQueryParametersError", "X-Amz-Expires must be 1 to 604800")
        if now > t + expires:
            return kid, (403, "AccessDenied", "Request has expired")
        if t > now + SKEW_S:
            return kid, (403, "SignatureDoesNotMatch", "Signature not yet current")
    elif abs(now - t) > SKEW_S:
        return kid, (403, "SignatureDoesNotMatch", "Signature expired: %s is now earlier than %s" % (amzdate, iso(now - SKEW_S)))
    if want_token is not None and token != want_token:
        return kid, (403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    if exp is not None and now > exp:
        return kid, (403, "ExpiredToken", "The security token included in the request is expired")
    names = signed.split(";")
    if "host" not in names:
        return kid, (403, "SignatureDoesNotMatch", "host must be signed")
    lines = []
    for n in names:
        v = headers.get(n)
        if v is None:
            return kid, (403, "SignatureDoesNotMatch", "signed header %s is missing" % n)
        lines.append(n + ":" + " ".join(v.split()))
    if presigned:
        payload = "UNSIGNED-PAYLOAD" if service == "s3" else hashlib.sha256(body).hexdigest()
    else:
        payload = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    creq = "\n".join([method, canonical_path(raw_path), canonical_query(pairs), "\n".join(lines) + "\n", signed, payload])
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, "/".join(parts[1:]), hashlib.sha256(creq.encode()).hexdigest()])
    want = hmac.new(derive(secret, date, region, svc), sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        return kid, (403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
    return kid, None


# --- the answers ----------------------------------------------------------

def sts_xml(action, inner):
    ns = "https://sts.amazonaws.com/doc/2011-06-15/"
    return ('<%sResponse xmlns="%s">\n  <%sResult>\n%s\n  </%sResult>\n'
            '  <ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>\n</%sResponse>\n'
            % (action, ns, action, inner, action, secrets.token_hex(8), action))


def sts_error(status, code, message):
    return status, ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
                    '  <Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>\n'
                    '  <RequestId>%s</RequestId>\n</ErrorResponse>\n'
                    % (code, message.replace("&", "&amp;").replace("<", "&lt;"), secrets.token_hex(8)))


def creds_xml(prefix):
    kid, secret, token, exp = issue(prefix)
    return ("    <Credentials>\n      <AccessKeyId>%s</AccessKeyId>\n"
            "      <SecretAccessKey>%s</SecretAccessKey>\n      <SessionToken>%s</SessionToken>\n"
            "      <Expiration>%s</Expiration>\n    </Credentials>" % (kid, secret, token, iso(exp)))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, ctype, entry):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        entry["status"] = status
        record(entry)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        raw_path, _, raw_query = self.path.partition("?")
        pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {"method": self.command, "path": raw_path, "valid": True}
        # never record a secret: only the names of what came
        entry["params"] = sorted(k for k, _ in pairs)

        if raw_path.startswith("/latest/"):
            return self.imds(raw_path, headers, entry)
        if raw_path == "/v1/credentials":
            return self.pod_identity(headers, entry)
        if raw_path.startswith("/clusters/"):
            kid, err = verify(self.command, raw_path, pairs, headers, body, "eks")
            entry.update(route="eks.DescribeCluster", key=kid)
            if err:
                entry.update(valid=False, reason=err[2])
                return self.answer(err[0], json.dumps({"message": err[2]}), "application/json", entry)
            name = urllib.parse.unquote(raw_path[len("/clusters/"):])
            for c in ARGS.cluster:
                if "=@" in c:   # NAME=@FILE: FILE holds ENDPOINT=CA_B64, read now
                    cname, f = c.split("=@", 1)
                    c = cname + "=" + open(f).read().strip()
                cname, endpoint, ca = c.split("=", 2)
                if cname == name:
                    return self.answer(200, json.dumps({"cluster": {
                        "name": name, "arn": "arn:aws:eks:us-east-1:111122223333:cluster/" + name,
                        "endpoint": endpoint, "status": "ACTIVE",
                        "certificateAuthority": {"data": ca}}}), "application/json", entry)
            entry.update(valid=False, reason="no such cluster")
            return self.answer(404, json.dumps({"message": "No cluster found for name: %s." % name}),
                               "application/json", entry)
        target = headers.get("x-amz-target", "")
        if target.startswith("AWSPriceListService."):
            return self.pricing(target, pairs, headers, body, entry)
        if target.startswith("AWSInsightsIndexService."):
            return self.cost_explorer(target, pairs, headers, body, entry)
        # STS: the query protocol, in the query or a form body
        form = pairs + urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True) \
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") else pairs
        f = dict(form)
        action = f.get("Action")
        entry["route"] = "sts." + str(action)
        if f.get("Version") != "2011-06-15":
            entry.update(valid=False, reason="Version")
            return self.answer(*sts_error(400, "InvalidAction", "Could not find operation %s for version %s" % (action, f.get("Version"))), "text/xml", entry)
        if action == "AssumeRoleWithWebIdentity":
            want = open(ARGS.web_token_file).read().strip() if ARGS.web_token_file else None
            if f.get("RoleArn") != ARGS.role:
                entry.update(valid=False, reason="role")
                return self.answer(*sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"), "text/xml", entry)
            if not f.get("WebIdentityToken") or (want is not None and f["WebIdentityToken"] != want):
                entry.update(valid=False, reason="token")
                return self.answer(*sts_error(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider"), "text/xml", entry)
            if not f.get("RoleSessionName"):
                entry.update(valid=False, reason="session name")
                return self.answer(*sts_error(400, "ValidationError", "RoleSessionName is required"), "text/xml", entry)
            return self.answer(200, sts_xml(action, creds_xml("ASIAWEB")), "text/xml", entry)
        kid, err = verify(self.command, raw_path, pairs, headers, body, "sts")
        entry["key"] = kid
        if err:
            entry.update(valid=False, reason=err[2])
            return self.answer(*sts_error(*err), "text/xml", entry)
        if action == "AssumeRole":
            if f.get("RoleArn") != ARGS.role or not f.get("RoleSessionName"):
                entry.update(valid=False, reason="role")
                return self.answer(*sts_error(403, "AccessDenied", "User is not authorized to perform: sts:AssumeRole on resource: %s" % f.get("RoleArn")), "text/xml", entry)
            return self.answer(200, sts_xml(action, creds_xml("ASIAROLE")), "text/xml", entry)
        if action == "GetCallerIdentity":
            entry["k8s_aws_id"] = headers.get("x-k8s-aws-id")
            inner = ("    <Arn>arn:aws:sts::111122223333:assumed-role/slipway/%s</Arn>\n"
                     "    <UserId>%s</UserId>\n    <Account>111122223333</Account>" % (kid, kid))
            return self.answer(200, sts_xml(action, inner), "text/xml", entry)
        entry.update(valid=False, reason="action")
        return self.answer(*sts_error(400, "InvalidAction", "Could not find operation %s" % action), "text/xml", entry)

    # --- Price List Query API (JSON 1.1 on POST /) ---------------------------

    def pricing(self, target, pairs, headers, body, entry):
        entry["route"] = "pricing." + target.split(".", 1)[1]
        kid, err = verify(self.command, "/", pairs, headers, body, "pricing")
        entry["key"] = kid

        def refuse(status, code, msg):
            entry.update(valid=False, reason=msg)
            return self.answer(status, json.dumps({"__type": "com.amazonaws.awspricing#" + code,
                                                   "message": msg}), "application/x-amz-json-1.1", entry)
        if err:
            return refuse(err[0], err[1], err[2])
        if headers.get("content-type") != "application/x-amz-json-1.1":
            return refuse(400, "InvalidParameterException", "Content-Type is not application/x-amz-json-1.1")
        if target != "AWSPriceListService.GetProducts":
            return refuse(400, "UnknownOperationException", target)
        if ARGS.pricing_denied:
            return refuse(400, "AccessDeniedException", "User: arn:aws:sts::111122223333:assumed-role/slipway "
                          "is not authorized to perform: pricing:GetProducts")
        try:
            q = json.loads(body)
            service, filters = q["ServiceCode"], q.get("Filters", [])
            want = [(f["Type"], f["Field"], f["Value"]) for f in filters]
        except (ValueError, KeyError, TypeError) as e:
            return refuse(400, "InvalidParameterException", "bad GetProducts request: %s" % e)
        if q.get("FormatVersion") != "aws_v1":
            return refuse(400, "InvalidParameterException", "FormatVersion must be aws_v1")
        entry["service"] = service
        entry["filters"] = {f: v for _, f, v in want}

        def matches(attrs):
            for typ, field, value in want:
                have = attrs.get(field)
                if typ in ("TERM_MATCH", "EQUALS"):
                    if have != value:
                        return False
                elif typ == "CONTAINS":
                    if have is None or value not in have:
                        return False
                else:
                    return False
            return True
        found = []
        for i, pr in enumerate(json.load(open(ARGS.prices)) if ARGS.prices else []):
            if pr["service"] != service or not matches(pr["attributes"]):
                continue
            sku = "SKU%04d" % i
            found.append(json.dumps({
                "product": {"sku": sku, "productFamily": pr["attributes"].get("productFamily", ""),
                            "attributes": pr["attributes"]},
                "serviceCode": service,
                "terms": {"OnDemand": {sku + ".JRTCKXETXF": {
                    "sku": sku, "effectiveDate": pr.get("date", "2026-11-01") + "T00:00:00Z",
                    "priceDimensions": {sku + ".JRTCKXETXF.6YS6EN2CT7": {
                        "unit": pr["unit"], "beginRange": "0", "endRange": "Inf",
                        "description": "stand-in price",
                        "pricePerUnit": {"USD": pr["usd"]}}}}}},
                "publicationDate": "2026-11-20T00:00:00Z"}))
        entry["matched"] = len(found)
        return self.answer(200, json.dumps({"FormatVersion": "aws_v1", "PriceList": found}),
                           "application/x-amz-json-1.1", entry)

    # --- Cost Explorer (JSON 1.1 on POST /) ----------------------------------
    # --costs FILE: {"TAG VALUE": {"SERVICE": [daily USD before this month,
    # daily USD this month]}}; a day after today has no figures, today's is
    # estimated. Pages of CE_PAGE days, as AWS pages long periods.

    CE_PAGE = 14

    def cost_explorer(self, target, pairs, headers, body, entry):
        entry["route"] = "ce." + target.split(".", 1)[1]
        kid, err = verify(self.command, "/", pairs, headers, body, "ce")
        entry["key"] = kid

        def refuse(status, code, msg):
            entry.update(valid=False, reason=msg)
            return self.answer(status, json.dumps({"__type": code, "Message": msg}),
                               "application/x-amz-json-1.1", entry)
        if err:
            return refuse(err[0], err[1], err[2])
        if headers.get("content-type") != "application/x-amz-json-1.1":
            return refuse(400, "InvalidParameterException", "Content-Type is not application/x-amz-json-1.1")
        if target != "AWSInsightsIndexService.GetCostAndUsage":
            return refuse(400, "UnknownOperationException", target)
        if ARGS.ce_denied:
            return refuse(400, "AccessDeniedException", "User: arn:aws:sts::111122223333:assumed-role/slipway/%s "
                          "is not authorized to perform: ce:GetCostAndUsage on resource: "
                          "arn:aws:ce:us-east-1:111122223333:/GetCostAndUsage" % kid)
        if ARGS.ce_throttle > 0:
            ARGS.ce_throttle -= 1
            return refuse(400, "LimitExceededException", "Rate exceeded")
        try:
            q = json.loads(body)
            start = datetime.date.fromisoformat(q["TimePeriod"]["Start"])
            end = datetime.date.fromisoformat(q["TimePeriod"]["End"])
            assert q["Granularity"] == "DAILY", "Granularity"
            assert q["Metrics"] == ["UnblendedCost"], "Metrics"
            assert q["GroupBy"] == [{"Type": "DIMENSION", "Key": "SERVICE"}], "GroupBy"
            tags = q.get("Filter", {}).get("Tags")
            skip = int(q.get("NextPageToken") or 0)
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            return refuse(400, "ValidationException", "bad GetCostAndUsage request: %s" % e)
        if start >= end:
            return refuse(400, "ValidationException", "Start date must be before End date")
        figures = json.load(open(ARGS.costs)) if ARGS.costs else {}
        if tags is not None:
            if tags.get("Key") != ARGS.cost_tag or tags.get("MatchOptions") != ["EQUALS"]:
                entry["tag"] = tags
                figures = {}
            else:
                figures = {v: figures.get(v, {}) for v in tags.get("Values", [])}
            entry["tag"] = "%s=%s" % (tags.get("Key"), ",".join(tags.get("Values", [])))
        today = datetime.datetime.now(datetime.timezone.utc).date()
        month = today.replace(day=1)
        days = []
        d = start + datetime.timedelta(days=skip)
        while d < end and len(days) < self.CE_PAGE:
            groups = {}
            if d <= today:
                for services in figures.values():
                    for svc, rates in services.items():
                        groups[svc] = groups.get(svc, 0.0) + (rates[1] if d >= month else rates[0])
            days.append({"TimePeriod": {"Start": d.isoformat(), "End": (d + datetime.timedelta(days=1)).isoformat()},
                         "Total": {}, "Estimated": d >= today,
                         "Groups": [{"Keys": [k], "Metrics": {"UnblendedCost": {"Amount": "%.10f" % v, "Unit": "USD"}}}
                                    for k, v in sorted(groups.items())]})
            d += datetime.timedelta(days=1)
        ans = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}], "ResultsByTime": days,
               "DimensionValueAttributes": []}
        if d < end:
            ans["NextPageToken"] = str(skip + len(days))
        entry["period"] = "%s/%s" % (start, end)
        return self.answer(200, json.dumps(ans), "application/x-amz-json-1.1", entry)

    def imds(self, path, headers, entry):
        entry["route"] = "imds"
        if path == "/latest/api/token":
            if self.command != "PUT" or not headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
                entry.update(valid=False, reason="IMDSv2 token needs a PUT with a TTL")
                return self.answer(400 if self.command == "PUT" else 405, "", "text/plain", entry)
            tok = secrets.token_urlsafe(32)
            IMDS_TOKENS.add(tok)
            return self.answer(200, tok, "text/plain", entry)
        if headers.get("x-aws-ec2-metadata-token") not in IMDS_TOKENS:
            entry.update(valid=False, reason="IMDSv1 (no token)")
            return self.answer(401, "", "text/plain", entry)
        base = "/latest/meta-data/iam/security-credentials/"
        if path == base:
            return self.answer(200, "slipway-node", "text/plain", entry)
        if path == base + "slipway-node":
            kid, secret, token, exp = issue("ASIAIMDS")
            return self.answer(200, json.dumps({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": kid,
                                                "SecretAccessKey": secret, "Token": token,
                                                "Expiration": iso(exp)}), "text/plain", entry)
        return self.answer(404, "", "text/plain", entry)

    def pod_identity(self, headers, entry):
        entry["route"] = "pod-identity"
        if not ARGS.pod_token or headers.get("authorization") != ARGS.pod_token:
            entry.update(valid=False, reason="authorization")
            return self.answer(401, json.dumps({"Message": "Service account token cannot be empty"}), "application/json", entry)
        kid, secret, token, exp = issue("ASIAPOD")
        return self.answer(200, json.dumps({"AccessKeyId": kid, "SecretAccessKey": secret, "Token": token,
                                            "AccountId": "111122223333", "Expiration": iso(exp)}),
                           "application/json", entry)

    do_GET = do_POST = do_PUT = handle_any


def main():
    global ARGS, OUT
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--key", action="append", default=[], help="AKID:SECRET, a long-term key")
    p.add_argument("--role", default="arn:aws:iam::111122223333:role/slipway")
    p.add_argument("--web-token-file")
    p.add_argument("--pod-token")
    p.add_argument("--ttl", type=int, default=3600)
    p.add_argument("--cluster", action="append", default=[],
                   help="NAME=ENDPOINT=CA_BASE64, or NAME=@FILE with that in FILE (read per request)")
    p.add_argument("--prices", help="a JSON list of {service, attributes, unit, usd[, date]}")
    p.add_argument("--pricing-denied", action="store_true", help="answer GetProducts with AccessDenied")
    p.add_argument("--costs", help='Cost Explorer figures: {"TAG VALUE": {"SERVICE": [daily before, daily this month]}}')
    p.add_argument("--cost-tag", default="environment", help="the cost-allocation tag key --costs is by")
    p.add_argument("--ce-denied", action="store_true", help="answer GetCostAndUsage with AccessDenied")
    p.add_argument("--ce-throttle", type=int, default=0, help="answer the first N GetCostAndUsage with LimitExceeded")
    ARGS = p.parse_args()
    for k in ARGS.key:
        kid, secret = k.split(":", 1)
        KEYS[kid] = (secret, None, None)
    OUT = open(ARGS.out, "a")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
