"""Labelled corpus for measuring PII detection quality (precision and recall per type).

Each sample is a string with its PII spans marked inline: ``⟦...⟧`` marks a value of the
list's type, ``⟦type|...⟧`` a value of another type; everything unmarked must not be
detected. A sample may carry a JSON key, in which case it is scanned as ``{key: text}`` (key
context: ``{"appVersion": "1.2.3.4"}`` is a version, ``{"phone": "4155550134"}`` a phone).
Negatives are deliberately tricky: Luhn-invalid 16-digit ids, version strings, UUIDs,
timestamps, hex digests, vault checksums, order numbers, zip codes, MAC addresses, ARNs.

Credentials (AWS keys, JWTs, PEM private keys, API keys) are generated from a fixed seed
instead of written out: the strings are still deterministic, but no secret-shaped literal
sits in the repository for secret scanners to flag.
"""

from __future__ import annotations

import base64
import json
import random
import re
from dataclasses import dataclass

_MARK = re.compile(r"⟦(?:([a-z_0-9]+)\|)?(.*?)⟧", re.S)


@dataclass(frozen=True)
class Sample:
    text: str  # with the markers removed
    labels: tuple[tuple[str, int, int], ...]  # (type, start, end) in ``text``
    key: str | None = None


def sample(marked: str, default_type: str | None = None, key: str | None = None) -> Sample:
    text, labels, last = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        before = marked[last:m.start()]
        text.append(before)
        length += len(before)
        pii_type = m.group(1) or default_type
        assert pii_type, f"unlabelled marker in {marked!r}"
        value = m.group(2)
        labels.append((pii_type, length, length + len(value)))
        text.append(value)
        length += len(value)
        last = m.end()
    text.append(marked[last:])
    return Sample("".join(text), tuple(labels), key)


# -- human-readable types, written out ------------------------------------------------------

EMAIL_POSITIVES = [
    "⟦alice@example.com⟧", "contact: ⟦bob.smith@example.org⟧", "Reply to <⟦carol+audit@mail.example.co.uk⟧>",
    "mailto:⟦dave@example.net⟧", "send to ⟦Eve.Adams@Example.COM⟧.", "⟦frank_o@sub.domain.example.io⟧, thanks",
    "user ⟦grace.hopper1906@navy.example.mil⟧ logged in", "\"⟦heidi@example.dev⟧\"", "(⟦ivan-petrov@example.ru⟧)",
    "⟦judy@xn--exmple-cua.de⟧", "⟦josé@exämple.es⟧", "⟦zoë.ærøskøbing@example.dk⟧", "owner=⟦qa-team@example.com⟧;",
    "⟦o'brien@example.ie⟧ wrote", "cc: ⟦mallory@example.museum⟧", "⟦n.o.p@example.technology⟧",
    "⟦first.last+tag+more@example.com⟧", "⟦x@example.io⟧", "⟦UPPER@EXAMPLE.ORG⟧", "⟦user%relay@example.com⟧",
    "notify ⟦oncall@alerts.example.com⟧ and ⟦security@example.com⟧", "⟦12345@numbers.example.com⟧",
    "email:⟦peggy@example.travel⟧", "From: Trent <⟦trent@example.com⟧>", "[⟦victor@example.ca⟧]",
    "⟦walter.white@example.com.au⟧ is the owner", "login by ⟦sybil_2@example.app⟧ from ⟦ipv4|198.51.100.23⟧",
    "⟦Ωmega@example.gr⟧", "⟦李小龍@例子.中国⟧", "⟦team-lead@my-company.example⟧",
    "addr ⟦a.b-c_d@e-f.example.info⟧", "⟦support@example.co.jp⟧?", "{'to': '⟦olivia@example.com⟧'}",
    "⟦uma@example.name⟧ / ⟦vera@example.pro⟧", "⟦noreply+bounce-123@mail.example.com⟧",
    "⟦wendy@example.xyz⟧", "Email ⟦yusuf@example.com.tr⟧ now", "⟦zach@example.ninja⟧!",
    "password reset for ⟦alice.w@example.com⟧ requested", "⟦test.user@staging.internal.example.com⟧",
    "⟦ops@example.org⟧\n⟦dev@example.org⟧", "⟦jane.doe@gmail.com⟧;⟦john@yahoo.com⟧", "\"Jane Doe\" <⟦jane@example.com⟧>",
    "⟦name+filter@proton.me⟧", "⟦a_b@c-d.ef⟧", "⟦e.mail@dömain.de⟧", "sent to ⟦bob@example.com⟧.",
]

EMAIL_NEGATIVES = [
    "user@localhost", "@mention in slack", "name@", "a@b", "icon@2x.png", "logo@3x.jpg", "lodash@4.17.21",
    "git@github.com:org/repo.git", "nginx@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "support at example dot com", "alice@example..com", "user@example.c", "@example.com", "email: (redacted)",
    "@types/node@18.19.3", "python@3.11", "user@@example.com", "foo@bar", "price @ 12.50 each", "node@20",
    "user@host", "the @ sign", "@@", "user@.com", "x@y.z", "foo@bar.baz1", "react-dom@18.2.0", "me@2x",
]

SSN_POSITIVES = [
    "SSN ⟦123-45-6789⟧ on file", "⟦078-05-1121⟧", "ssn: ⟦219-09-9998⟧", "Social Security Number: ⟦457-55-5462⟧",
    "⟦001-01-0001⟧", "applicant ⟦665-12-3456⟧ verified", "⟦667-99-9999⟧", "⟦899-12-3456⟧", "id ⟦532 44 1234⟧",
    "SSN: ⟦123456789⟧", "ssn=⟦234567890⟧", "social security ⟦345678901⟧", "SS# ⟦456789012⟧", "(⟦111-22-3333⟧)",
    "⟦222-33-4444⟧, ⟦333-44-5555⟧", "taxpayer ⟦444-55-6666⟧ flagged", "\"⟦555-66-7777⟧\"", "⟦777-88-9999⟧.",
    "employee ssn ⟦888-11-2222⟧", "⟦100-10-1000⟧", "⟦212-01-0001⟧", "⟦350-99-0101⟧", "ref ⟦401-23-4567⟧ closed",
    "⟦512-64-1024⟧", "SSN ⟦601 02 0304⟧", "⟦623-45-6780⟧;", "⟦700-70-7070⟧", "value=⟦734-12-9087⟧",
    "⟦801-55-1234⟧ and phone ⟦phone|415-555-0134⟧", "⟦865-43-2109⟧", "ssn:⟦123-12-1234⟧", "⟦245-87-1190⟧",
    "patient ⟦318-20-4481⟧", "⟦390-11-2233⟧", "⟦412-78-3311⟧", "SSN #⟦509-44-8710⟧", "⟦574-30-9921⟧",
    "⟦609-18-2846⟧", "⟦681-42-7733⟧", "⟦749-02-5518⟧", "⟦812-66-0042⟧", "⟦856-31-7204⟧",
    "SSN ⟦123 45 6789⟧", "SSN: ⟦123-45-6789⟧.", "ssn ⟦287-65-4320⟧ (verified)",
]

SSN_NEGATIVES = [
    "000-12-3456", "666-12-3456", "900-12-3456", "999-99-9999", "123-00-4567", "123-45-0000", "1123-45-6789",
    "123-45-67890", "order 123456789", "123456789", "ref 987654321", "94103-1234", "2026-01-01", "123-45-6789-01",
    "x123-45-6789", "123-456-789", "12-345-6789", "SSN 000-00-0000", "SSN 666-45-1234", "ssn 987-65-4321",
    "version 123.45.6789", "123-45-678", "tel 123-45-6789x", "ISBN 978-3-16-148410-0", "ssn 12345678",
]

CARD_POSITIVES = [
    "⟦4111111111111111⟧", "card ⟦4111 1111 1111 1111⟧", "⟦5555-5555-5555-4444⟧", "amex ⟦378282246310005⟧",
    "⟦3782 822463 10005⟧", "⟦6011111111111117⟧", "⟦3530111333300000⟧", "diners ⟦30569309025904⟧",
    "⟦5105105105105100⟧", "⟦4012 8888 8888 1881⟧", "⟦371449635398431⟧", "⟦6011-0009-9013-9424⟧",
    "⟦3566002020360505⟧", "⟦4222222222222⟧", "⟦2223003122003222⟧", "⟦6200000000000005⟧",
    "⟦4526018159083012⟧", "paid with ⟦4661 3186 0913 9090⟧ today", "⟦4960308246280⟧", "⟦4194821993518190939⟧",
    "⟦5178 6579 7543 2313⟧", "⟦5394-8757-4911-8624⟧", "⟦5552760189555972⟧", "⟦2221971147104971⟧",
    "⟦2720 4650 7529 1708⟧", "⟦2500342366712765⟧", "⟦348426846563219⟧", "⟦3722 330792 44023⟧", "⟦376859952890783⟧",
    "⟦6011666617603131⟧", "⟦6011721590109281591⟧", "⟦6501 3962 4595 7116⟧", "⟦6447777412154727⟧",
    "⟦3528803852808413⟧", "⟦3589-4852-5388-8537⟧", "⟦30093363387506⟧", "⟦36047439575514⟧", "⟦38313735379904⟧",
    "⟦6275116372651678⟧", "⟦6261222029729975287⟧", "⟦5018820018263301⟧", "⟦6304434839548626⟧",
    "⟦2200057986828287⟧", "⟦6080729022279180⟧", "order 12 ⟦4111 1111 1111 1111⟧", "cards ⟦4111111111111111⟧ ⟦5555555555554444⟧",
    "pan=⟦4012888888881881⟧&exp=12/29", "\"number\": \"⟦5200828282828210⟧\"",
    "⟦4111 1111 1111 1111⟧.", "Card: ⟦5555 5555 5555 4444⟧, exp 12/29", "⟦3714 496353 98431⟧", "⟦6011 0009 9013 9424⟧", "card ⟦4111 1111 1111 1111⟧ ends",
]

CARD_NEGATIVES = [
    # Luhn-invalid 16-digit ids
    "4982597919074833", "6887623286012904", "3479666972510273", "5646869589693504", "4589913944117715",
    "3620466109906958", "5830401198036494", "4055526678698198", "5634648485069506", "4057559470900547",
    "5995252559446109", "5195926484756469", "4111111111111112", "4111 1111 1111 1112",
    # Luhn-valid, but no card network issues numbers with these prefixes
    "1058887180334012", "7878017598983474", "8887838483726166", "9751361341252425", "0731672326865633",
    "1551505877065895", "7481131144024268", "1234567812345670", "0000000000000000",
    # longer digit runs, timestamps, ids
    "41111111111111110", "18446744073709551617", "20260101123000123", "1767225600123", "epoch 1767225600000",
    "order 202601010000123456", "41 11 11 11 11 11 11 11", "4111.1111.1111.1111", "tracking 1Z999AA10123456784",
    "IBAN DE89 3704 0044 0532 0130 00", "IBAN GB82 WEST 1234 5698 7654 32", "4111-1111-1111-111",
    "account 123456789012", "x4111111111111111", "1111 2222 3333 4444", "4111 111 1111 1111", "card ending 1111",
    "**** **** **** 1111", "XXXX-XXXX-XXXX-4444", "4111 1111", "5555 5555 5555 444",
]

PHONE_POSITIVES = [
    "Call me at ⟦+1 (415) 555-0134⟧", "⟦+14155550134⟧", "⟦(415) 555-0134⟧", "⟦415-555-0134⟧", "⟦415.555.0134⟧",
    "⟦415 555 0134⟧", "⟦1-800-555-0199⟧", "⟦+44 20 7946 0958⟧", "⟦+447911123456⟧", "⟦+33 1 23 45 67 89⟧",
    "⟦+49 (0)30 1234567⟧", "⟦+49 30 12345678⟧", "⟦+91 98765 43210⟧", "⟦+81-3-1234-5678⟧", "⟦+61 2 9876 5432⟧",
    "⟦+55 11 91234-5678⟧", "⟦+86 10 1234 5678⟧", "⟦+7 495 123-45-67⟧", "⟦+353 1 234 5678⟧", "⟦+27 21 123 4567⟧",
    "⟦0044 20 7946 0958⟧", "tel: ⟦020 7946 0958⟧", "mobile ⟦06 12 34 56 78⟧", "phone: ⟦4155550134⟧",
    "fax ⟦(02) 9876 5432⟧", "Phone number: ⟦555-0134⟧", "whatsapp ⟦+34 612 34 56 78⟧", "⟦+1 212 555 0100⟧",
    "⟦(212)555-0100⟧", "⟦1 (646) 555-0188⟧", "reach ⟦+1-202-555-0173⟧ or ⟦+1.202.555.0148⟧",
    "⟦+31 6 12345678⟧", "⟦+46 8 123 456 78⟧", "⟦+39 06 1234 5678⟧", "⟦+52 55 1234 5678⟧", "⟦+82 2-123-4567⟧",
    "⟦+65 6123 4567⟧", "⟦+971 4 123 4567⟧", "⟦+234 803 123 4567⟧", "⟦+1 (800) 555-0100⟧ ext 12",
    "on-call: ⟦312-555-0142⟧", "\"⟦617.555.0199⟧\"", "cell ⟦07700 900123⟧", "sms ⟦+44 7700 900123⟧",
    "⟦+1 415 555 0134⟧", "⟦+44 (0) 20 7946 0958⟧", "⟦+1-415-555-0134⟧", "⟦001 415 555 0134⟧", "⟦+86 138 0013 8000⟧",
    "⟦+90 212 123 45 67⟧",
]

PHONE_NEGATIVES = [
    "2026-01-01 12:34:56", "12:34:56.789", "1767225600", "1767225600123", "⟦ipv4|1.2.3.4⟧", "⟦ipv4|10.0.0.1⟧", "Order #123456789",
    "invoice 2026-000123", "+0.5", "+100", "+1.5%", "v2.15.0", "zip 94103-1234", "5551234", "ISBN 978-3-16-148410-0",
    "build 20260101.1234", "latency 1234567 ms", "+12", "1-2-3-4-5-6-7", "2026.01.01", "12/31/2026", "UTC+05:30",
    "+05:30", "port 8080", "pid 4155550", "37.7749,-122.4194", "1,234,567.89", "$1 234 567", "serial 555-0134",
    "⟦ipv4|192.168.100.200⟧", "2026-01-01T00:12:34.123456Z", "0012345678", "00123456789012", "count: 12345678",
    "ticket 415-555", "1e+10", "+1234567890123456", "sha 4155550134abcdef", "id_4155550134",
    "aws-cli/2.15.0 Python/3.11", "3.14159265358979", "-122.419416", "tel 2026-01-01", "⟦ssn|415-55-0134⟧",
    "123-456-7890", "911", "phone: 12345", "1234-5678-9012", "2026 01 01", "(555) 123", "+1 (555)", "ext. 1234",
    "Room 101-202-3030", "10:30-11:45", "Ratio 3:2", "ISO 8601", "page 12 of 345", "+1 day",
]

IPV4_POSITIVES = [
    "from ⟦203.0.113.7⟧", "⟦198.51.100.23⟧", "⟦192.0.2.44⟧", "⟦10.1.2.3⟧", "⟦127.0.0.1⟧", "⟦0.0.0.0⟧",
    "⟦255.255.255.255⟧", "http://⟦10.0.0.1⟧:8080/health", "ip=⟦192.168.1.1⟧;", "[⟦192.0.2.1⟧]",
    "X-Forwarded-For: ⟦203.0.113.7⟧, ⟦198.51.100.23⟧", "host ⟦8.8.8.8⟧.", "⟦172.16.254.1⟧", "⟦100.64.0.1⟧",
    "⟦169.254.169.254⟧", "client ⟦52.94.236.248⟧ denied", "⟦1.1.1.1⟧", "⟦9.9.9.9⟧", "⟦34.117.59.81⟧",
    "src=⟦10.20.30.40⟧ dst=⟦10.20.30.41⟧", "⟦192.168.0.254⟧/24", "⟦10.0.0.0⟧/8", "(⟦203.0.113.200⟧)",
    "\"⟦198.51.100.1⟧\"", "⟦224.0.0.251⟧", "⟦240.0.0.1⟧", "peer ⟦185.199.108.153⟧:443", "⟦151.101.1.69⟧",
    "⟦13.107.42.14⟧", "⟦20.190.128.0⟧", "login from ⟦81.2.69.142⟧ at 09:00", "⟦2.16.0.1⟧", "⟦45.33.32.156⟧",
    "⟦64.233.160.0⟧", "⟦74.125.224.72⟧", "⟦104.16.132.229⟧", "⟦140.82.112.3⟧", "⟦199.232.68.133⟧",
    "⟦216.58.214.14⟧", "⟦23.45.67.89⟧", "addr: ⟦11.22.33.44⟧", "⟦192.168.1.100⟧ and ⟦192.168.1.101⟧",
]

IPV4_NEGATIVES = [
    "1.2.3.4.5", "version 1.2.3.4", "v1.2.3.4", "Chrome/120.0.0.0", "1.2.3.4-beta", "256.1.1.1", "1.2.3",
    "01.02.03.04", "192.168.1", "1.3.6.1.4.1.311", "10.0.0.300", "Firefox/115.0.2.1", "release 2.0.0.1",
    "build 5.1.2600.5512", "ver 4.4.0.1", "2026.01.01.12", "1.2.3.4.5.6.7.8", "Windows NT 10.0.19045.3693",
    "10.0.0.1234", "3.14.15.926", "Mozilla/5.0 AppleWebKit/537.36 Chrome/120.0.6099.109 Safari/537.36",
    "firmware 1.0.0.12", "1.2.3.4+build5", "Version: 5.4.0.1", "node v20.10.0", "kernel 6.5.0-14-generic",
    "Server: nginx/1.25.3", "build 10.0.22631.2861", "agent 3.2.1.0 installed",
]

IPV6_POSITIVES = [
    "⟦2001:db8::1⟧", "⟦2001:0db8:85a3:0000:0000:8a2e:0370:7334⟧", "⟦::1⟧", "⟦fe80::1ff:fe23:4567:890a⟧",
    "⟦fe80::1%eth0⟧", "⟦::ffff:192.0.2.128⟧", "⟦2001:DB8:0:0:8:800:200C:417A⟧", "[⟦2001:db8::1⟧]:443",
    "http://[⟦2001:db8:85a3::8a2e:370:7334⟧]/", "from ⟦2606:4700:4700::1111⟧", "⟦2001:4860:4860::8888⟧",
    "⟦2a03:2880:f10c:83:face:b00c:0:25de⟧", "⟦fd00::1⟧", "⟦ff02::1⟧", "⟦2001:db8:0:1::⟧", "⟦2001:db8::⟧",
    "⟦1:2:3:4:5:6:7:8⟧", "⟦::ffff:10.0.0.1⟧", "⟦64:ff9b::192.0.2.33⟧", "src ⟦2001:db8:1234:5678::9⟧ dst ⟦2001:db8::2⟧",
    "⟦2620:0:2d0:200::7⟧", "⟦2a00:1450:4001:81c::200e⟧", "⟦2600:1f18:24e6:b900::1⟧", "⟦fe80::a00:27ff:fe4e:66a1⟧",
    "⟦2001:db8:a0b:12f0::1⟧", "client=⟦2001:db8:3333:4444:5555:6666:7777:8888⟧;", "⟦2001:db8::8a2e:370:7334⟧",
    "(⟦2001:db8:ab::12⟧)", "\"⟦2001:db8:cafe::17⟧\"", "⟦2404:6800:4003:c00::8a⟧", "⟦2001:67c:2e8:22::c100:68b⟧",
    "⟦3fff::1⟧", "⟦2001:db8:0:0:1:0:0:1⟧", "⟦2001:db8::1:0:0:1⟧", "⟦fec0::1⟧", "⟦100::1⟧", "⟦2002:c000:0204::1⟧",
    "ipv6 ⟦2001:470:1f0b:1::2⟧ up", "⟦2001:db8:4:5:6:7:8:9⟧", "⟦2001:db8:dead:beef::1⟧", "⟦::ffff:203.0.113.9⟧",
]

IPV6_NEGATIVES = [
    "12:34:56", "00:1a:2b:3c:4d:5e", "dead::beef", "std::vector", "a:b:c", "1:2:3", "2001:db8:::1", "12:30",
    "arn:aws:iam::123456789012:user/alice", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "1::2::3", "fe80:::1", "::", "TODO::fix", "Foo::Bar::Baz", "AA:BB:CC:DD:EE:FF", "10:00:00", "2026-01-01T10:00:00Z",
    "abc::def", "cafe::babe", "1:2:3:4:5:6:7:8:9", "ratio 16:9", "tags a:b:c:d", "urn:uuid:3f2a9c10-1234-4abc-8def-0123456789ab",
    "s3::bucket", "12345::6789",
]

# -- generated credentials --------------------------------------------------------------------

_rng = random.Random(20260101)
_B62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_B64 = _B62 + "+/"


def _random(alphabet: str, n: int) -> str:
    while True:
        token = "".join(_rng.choice(alphabet) for _ in range(n))
        # Real keys of these alphabets essentially always mix all three classes at these lengths.
        if any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token):
            return token


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _aws_key_id(prefix: str = "AKIA") -> str:
    return prefix + "".join(_rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def _jwt(alg: str = "HS256", extra_header: dict | None = None, claims: dict | None = None, sig_bytes: int = 32) -> str:
    header = {"alg": alg, "typ": "JWT", **(extra_header or {})}
    payload = claims or {"sub": f"user-{_rng.randrange(10**6)}", "iat": 1767225600, "exp": 1767229200}
    signature = _b64url(bytes(_rng.randrange(256) for _ in range(sig_bytes))) if sig_bytes else ""
    return ".".join([_b64url(json.dumps(header, separators=(",", ":")).encode()),
                     _b64url(json.dumps(payload, separators=(",", ":")).encode()), signature])


def _pem(kind: str, body_bytes: int = 600, newline: str = "\n", end: bool = True) -> str:
    label = f"{kind} PRIVATE KEY" if kind != "PGP" else "PGP PRIVATE KEY BLOCK"
    if kind == "":
        label = "PRIVATE KEY"
    body = base64.b64encode(bytes(_rng.randrange(256) for _ in range(body_bytes))).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    parts = ["-----BEGIN " + label + "-----", *lines]
    if end:
        parts.append("-----END " + label + "-----")
    return newline.join(parts)


def _generated() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    ids = [_aws_key_id("AKIA") for _ in range(25)] + [_aws_key_id("ASIA") for _ in range(17)]
    contexts = ["{}", "aws_access_key_id = {}", "AccessKeyId: \"{}\"", "key {} rotated", "creds={};", "({})",
                "export AWS_ACCESS_KEY_ID={}", "'{}'", "id:{}"]
    out["aws_access_key_id"] = [contexts[i % len(contexts)].format(f"⟦{k}⟧") for i, k in enumerate(ids)]
    out["aws_access_key_id"].append("⟦AKIAIOSFODNN7EXAMPLE⟧")  # AWS's documented example id

    jwts = []
    for i in range(42):
        alg = ["HS256", "RS256", "ES256", "HS512", "PS256", "EdDSA"][i % 6]
        sig = {"HS256": 32, "RS256": 256, "ES256": 64, "HS512": 64, "PS256": 256, "EdDSA": 64}[alg]
        extra = {"kid": f"key-{i}"} if i % 3 == 0 else None
        claims = {"sub": f"user-{i}", "email_verified": True, "roles": ["auditor"], "iat": 1767225600 + i} if i % 4 == 0 else None
        jwts.append(_jwt(alg, extra, claims, sig))
    jwts.append(_jwt("none", None, None, 0))  # unsigned token: still a credential-bearing JWT
    contexts = ["{}", "Authorization: Bearer {}", "token={}&state=xyz", "session={}; Path=/; HttpOnly", "\"id_token\": \"{}\"",
                "jwt {} expired", "{}\n"]
    out["jwt"] = [contexts[i % len(contexts)].format(f"⟦{t}⟧") for i, t in enumerate(jwts)]

    keys = []
    kinds = ["RSA", "EC", "OPENSSH", "ENCRYPTED", "", "DSA", "PGP"]
    for i in range(42):
        kind = kinds[i % len(kinds)]
        newline = "\\n" if i % 5 == 1 else "\n"  # keys pasted into logs often arrive with escaped newlines
        truncated = i % 11 == 10
        marked = "⟦" + _pem(kind, 200 + 37 * i, newline, end=not truncated) + "⟧"
        if truncated:  # cut off mid-key (a truncated log line): everything after BEGIN is masked
            keys.append("key: " + marked)
        else:
            keys.append(["{}", "config dump {} end", "private_key=\"{}\""][i % 3].format(marked))
    out["private_key"] = keys

    secrets = [_random(_B64, 40) for _ in range(16)]
    contexts = ["aws_secret_access_key = {}", "\"SecretAccessKey\": \"{}\"", "AWS_SECRET_ACCESS_KEY={}", "secret: {}", "{}"]
    out["aws_secret_key"] = [contexts[i % len(contexts)].format(f"⟦{s}⟧") for i, s in enumerate(secrets)]

    bearers = [_random(_B62 + "-._~", 32) for _ in range(16)]
    out["bearer_token"] = [("Authorization: Bearer ⟦{}⟧" if i % 2 else "bearer ⟦{}⟧").format(b) for i, b in enumerate(bearers)]
    out["bearer_token"] += ["Authorization: Basic ⟦" + base64.b64encode(f"svc-{i}:{_random(_B62, 12)}".encode()).decode() + "⟧"
                            for i in range(4)]

    api = [
        "sk-" + _random(_B62, 48), "sk-proj-" + _random(_B62 + "_-", 64), "ghp_" + _random(_B62, 36),
        "github_pat_" + _random(_B62, 22) + "_" + _random(_B62, 59), "xoxb-" + "".join(_rng.choice("0123456789") for _ in range(12))
        + "-" + "".join(_rng.choice("0123456789") for _ in range(13)) + "-" + _random(_B62, 24),
        "AIza" + _random(_B62 + "_-", 35), "sk_live_" + _random(_B62, 24), "glpat-" + _random(_B62 + "_-", 20),
        "npm_" + _random(_B62, 36), "hf_" + _random(_B62, 34),
    ]
    api += [_random(_B62, n) for n in (24, 32, 32, 48, 64, 28, 36, 44, 52, 30)]
    contexts = ["{}", "api_key={}", "X-Api-Key: {}", "\"token\": \"{}\"", "key {} revoked"]
    out["api_key"] = [contexts[i % len(contexts)].format(f"⟦{k}⟧") for i, k in enumerate(api)]
    return out


_GENERATED = _generated()

CREDENTIAL_NEGATIVES = [
    # AWS-looking ids that are not access keys
    "AIDA" + "0123456789ABCDEF", "AROA" + "ABCDEFGHIJKLMNOP", "AKIA" + "ABCDEFGHIJKLMNO", "AKIA" + "ABCDEFGHIJKLMNOPQ",
    "akia" + "abcdefghijklmnop", "AKIA rotation policy", "principal AIDA" + "7E3F0A9B1C2D4E5F",
    # JWT-looking but not a JWT
    "eyJ" + "notbase64json.eyJ" + "alsonot.sig", "eyJhbGciOiJIUzI1NiJ9", "eyJ" + "zdWIiOiIxMjM0In0.signature",
    # public material, prose
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    "-----BEGIN CERTIFICATE REQUEST-----", "store the private key in KMS", "BEGIN PRIVATE KEY",
    # bearer prose and placeholders
    "Bearer authentication is required", "Authorization: Bearer <token>", "bearer realm=\"api\"", "Bearer token",
    # checksums, digests and ids that are high-entropy-ish but not secrets
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "d41d8cd98f00b204e9800998ecf8427e",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    "3f2a9c10-1234-4abc-8def-0123456789ab", "3F2A9C10-1234-4ABC-8DEF-0123456789AB",
    "log_0f1e2d3c4b5a69788796a5b4c3d2e1f0", "run 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
    "AbstractSingletonProxyFactoryBean", "getUserAccountDetailsV2Handler", "com.example.audit.IngestionService2026",
    "/var/lib/docker/overlay2/abc123def456/merged", "reports/2026/Q4/summary-final-v2.pdf",
    "raw/acme_audit/2026/01/01/00/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.json",
    "web-7d4b9c8f6d-x2x9k", "i-0abcd1234efgh5678", "ip-10-0-0-1.ec2.internal", "us-east-1_AbCdEfGhI",
    "arn:aws:iam::123456789012:role/AuditReadOnlyRole2026", "ThisIsALongCamelCaseIdentifier2026",
    "x-amz-request-id 4442587FB7D0A2F9", "projects/my-project-123456/locations/us-central1/keyRings/ring1",
]

# -- general negatives: realistic audit values that look like nothing in particular ---------

GENERAL_NEGATIVES = [
    "2026-01-01T00:12:34.123456Z", "2026-01-01 12:34:56+00:00", "20260101T001234Z", "Thu, 01 Jan 2026 00:00:00 GMT",
    "01/01/2026 12:34:56", "2026-01-01T00:00:00.000-05:00", "1.08", "1.2.3", "v2.15.0-rc.1", "Python/3.11.7",
    "aws-cli/2.15.0 Python/3.11 \t(tab)  ", "s3.amazonaws.com", "GetObject", "us-east-1", "AssumedRole",
    "arn:aws:iam::123456789012:user/alice", "123456789012", "Zoë Ærøskøbing", "李小龍", "Ωmega 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "🦄 ops-bot",
    "e\u0301mile", "audit-α", "reports/2026/𝒬4.pdf", "AccessDenied", "94103", "SW1A 1AA", "PT1H30M", "2026-W01",
    "0 */5 * * *", "18446744073709551617", "1767225600", "expected 200, got 503\n  at step 3", "Summarise the Q3 report",
    "Ünïcödé ⟨test⟩ 🧪", "test_emoji_😀_names_42", "release/2.1", "feature/üñí", "rate limited", "context too long",
    "gpt-4o", "claude-sonnet", "llama-3-70b", "timeout ⏱", "ORD-2026-000123456", "INV-000042", "qty 12, total 1,234.56",
    "lat 37.7749 lon -122.4194", "HTTP/1.1 200 OK", "TLSv1.3", "port 443", "pid=31337", "uid=1000(ops) gid=1000(ops)",
    "checksum sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "git commit 9fceb02d0ae598e95dc970b74767f19372d61af8", "docker pull python:3.11-slim", "10 MiB / 1.5 GiB",
    "duration_ms 1234.567", "build 20260101.7", "seed 18446744073709551616", "x-amz-id-2", "OK", "", " ",
    "OpenSSL/3.0.2", "Go-http-client/1.1", "Edge/18.17763", "macOS 14.2.1", "PostgreSQL 16.1 on x86_64",
    "coordinates 51.5074,-0.1278", "user-agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Basic realm=\"vault\"",
]

# Key context: the same value means different things under different keys.
KEYED = [
    sample("1.2.3.4", key="appVersion"), sample("10.2.0.1", key="firmware_version"), sample("4.4.0.1", key="build"),
    sample("⟦10.2.0.1⟧", "ipv4", key="client_ip"), sample("⟦4155550134⟧", "phone", key="phone"),
    sample("⟦+44 20 7946 0958⟧", "phone", key="mobile"), sample("⟦123456789⟧", "ssn", key="ssn"),
    sample("123456789", key="order_id"), sample("4155550134", key="order_number"),
    sample("⟦0f1e2d3c4b5a69788796a5b4c3d2e1f0⟧", "api_key", key="api_key"),
    sample("0f1e2d3c4b5a69788796a5b4c3d2e1f0", key="request_id"),
    sample("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", key="checksum"),
    sample("⟦4155550134⟧", "phone", key="phone_number"), sample("⟦020 7946 0958⟧", "phone", key="mobilePhone"),
    sample("4155550134", key="cancellation_id"), sample("meta-llama/Llama-3-70b-instruct", key="tokenizer_name"),
    sample("4096", key="max_tokens"), sample("2.15.0.1", key="agentVersion"),
]

_POSITIVE_LISTS = {
    "email": EMAIL_POSITIVES, "ssn": SSN_POSITIVES, "credit_card": CARD_POSITIVES, "phone": PHONE_POSITIVES,
    "ipv4": IPV4_POSITIVES, "ipv6": IPV6_POSITIVES, **_GENERATED,
}
_NEGATIVE_LISTS = [EMAIL_NEGATIVES, SSN_NEGATIVES, CARD_NEGATIVES, PHONE_NEGATIVES, IPV4_NEGATIVES, IPV6_NEGATIVES,
                   CREDENTIAL_NEGATIVES, GENERAL_NEGATIVES]


def corpus() -> list[Sample]:
    """Every labelled sample: positives of each type, then the negatives (no labels)."""
    samples = [sample(text, pii_type) for pii_type, texts in _POSITIVE_LISTS.items() for text in texts]
    samples += [sample(text) for texts in _NEGATIVE_LISTS for text in texts]
    return samples + KEYED


def positives_per_type() -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in corpus():
        for pii_type, _, _ in s.labels:
            counts[pii_type] = counts.get(pii_type, 0) + 1
    return counts


# -- measuring -------------------------------------------------------------------------------

STRUCTURED_TYPES = ("email", "ssn", "credit_card", "phone", "ipv4", "ipv6", "aws_access_key_id", "jwt", "private_key")
TARGET_RECALL = 0.99
TARGET_PRECISION = 0.97


@dataclass(frozen=True)
class TypeQuality:
    type: str
    positives: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else 1.0


def findings_of(scanner, s: Sample) -> set[tuple[str, int, int]]:
    if s.key is None:
        return {(f.type, f.start, f.end) for f in scanner.scan_text(s.text)}
    return {(f.type, f.start, f.end) for f in scanner.scan({s.key: s.text}) if not f.in_key}


def measure(scanner=None) -> tuple[list[TypeQuality], list[tuple[str, str, str]]]:
    """Per-type quality on the whole corpus (exact spans), and the errors as
    (kind, type, excerpt) with kind "FP" or "FN", for debugging a regression."""
    from vault_pipeline.core.pii import PII_TYPES, PiiScanner

    scanner = scanner or PiiScanner()
    tp: dict[str, int] = dict.fromkeys(PII_TYPES, 0)
    fp, fn, pos = dict(tp), dict(tp), dict(tp)
    errors = []
    for s in corpus():
        expected = set(s.labels)
        found = findings_of(scanner, s)
        for t, a, b in expected:
            pos[t] += 1
            if (t, a, b) in found:
                tp[t] += 1
            else:
                fn[t] += 1
                errors.append(("FN", t, s.text[max(0, a - 20):b + 20][:120]))
        for t, a, b in found - expected:
            fp[t] += 1
            errors.append(("FP", t, s.text[max(0, a - 20):b + 20][:120]))
    rows = [TypeQuality(t, pos[t], tp[t], fp[t], fn[t]) for t in PII_TYPES]
    return rows, errors


def format_quality(rows: list[TypeQuality]) -> str:
    lines = [f"{'type':<18} {'positives':>9} {'TP':>5} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}  target",
             "-" * 72]
    for r in rows:
        target = f"P>={TARGET_PRECISION} R>={TARGET_RECALL}" if r.type in STRUCTURED_TYPES else "(reported)"
        lines.append(f"{r.type:<18} {r.positives:>9} {r.true_positives:>5} {r.false_positives:>4} {r.false_negatives:>4} "
                     f"{r.precision:>9.3f} {r.recall:>7.3f}  {target}")
    negatives = sum(1 for s in corpus() if not s.labels)
    lines.append(f"{len(corpus())} samples, {negatives} without any PII")
    return "\n".join(lines)
