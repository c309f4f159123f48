#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into fuzz/seeds/<target>/ from Herald's own test
corpora, so they follow the tests: ingest's malformed-request corpus
(crates/herald-ingest/tests/it/corpus.rs), the CESQL TCK (crates/herald-cesql/tests/cesql-tck/),
the filter, retry-policy, delivery-settings, network and subject tests of herald-core, the
signing tests of herald-signing, and a few valid events. `make fuzz` runs it before fuzzing; the corpora grow in fuzz/corpus/<target>/."""

import hashlib
import json
import os
import re
import shutil

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
SEEDS = os.path.join(FUZZ, "seeds")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        return file.read()


def raw_strings(source):
    """Rust raw string literals r#"..."# and ordinary "..." literals (unescaped simply)."""
    found = [match.group(1) for match in re.finditer(r'r#"(.*?)"#', source, re.S)]
    for match in re.finditer(r'(?<![r#\w])"((?:[^"\\\n]|\\.)*)"', source):
        text = match.group(1)
        try:
            text = json.loads(f'"{text}"')
        except ValueError:
            pass
        found.append(text)
    return found


def valid_event(event_id="seed-1", event_type="com.seed"):
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/herald/tests",
        "type": event_type,
        "datacontenttype": "application/json",
        "data": {"n": event_id},
    }


def structured_seeds():
    corpus = read("crates/herald-ingest/tests/it/corpus.rs")
    seeds = [json.dumps(valid_event()), json.dumps(valid_event("seed-2", "com.example.order.created"))]
    seeds.append(json.dumps({**valid_event("b64"), "datacontenttype": "application/octet-stream", "data_base64": "aGVsbG8="}))
    seeds.append(json.dumps({**valid_event("text"), "datacontenttype": "text/plain", "data": "hello"}))
    seeds.append(json.dumps({**valid_event("ext"), "partitionkey": "k-1", "extint": 5, "extbool": True, "time": "2026-01-01T00:00:00Z", "subject": "s"}))
    seeds.append('{"specversion":"1.0","id":"deep","source":"/s","type":"t","data":' + "[" * 2000 + "]" * 2000 + "}")
    # event_with("name", Some(r#"value"#)) and event_with("name", None), as corpus.rs builds them.
    for match in re.finditer(r'event_with\("([^"]+)",\s*(None|Some\(r#"(.*?)"#\)|Some\("([^"]*)"\))', corpus):
        name, value = match.group(1), match.group(3) or match.group(4)
        event = valid_event("corpus-1", "com.corpus")
        event.pop(name, None)
        text = json.dumps(event, separators=(",", ":"))
        if value is not None:
            text = text[:-1] + f',"{name}":{value}}}'
        seeds.append(text)
    for match in re.finditer(r'(?:structured|batch)\(\s*"[^"]*",\s*b(?:r#)?"(.*?)"#?,?\s*\)', corpus, re.S):
        seeds.append(match.group(1))
    return seeds


def binary_seeds():
    corpus = read("crates/herald-ingest/tests/it/corpus.rs")
    base = [("ce-specversion", "1.0"), ("ce-id", "binary-1"), ("ce-source", "/herald/tests"), ("ce-type", "com.corpus"), ("content-type", "application/json")]

    def render(fields, body='{"n":1}'):
        return "".join(f"{name}: {value}\n" for name, value in fields) + "\n" + body

    seeds = [render(base), render(base + [("ce-subject", "a%20b"), ("ce-time", "2026-01-01T00:00:00Z"), ("ce-partitionkey", "k")], "hello")]
    for match in re.finditer(r'binary\(\s*"[^"]*",\s*&\[(.*?)\],\s*&\[(.*?)\]\s*,?\s*\)', corpus, re.S):
        fields = list(base)
        for change in re.finditer(r'\("([^"]+)",\s*(?:Some\("([^"]*)"\)|None)\)', match.group(1)):
            fields = [field for field in fields if field[0] != change.group(1)]
            if change.group(2) is not None:
                fields.append((change.group(1), change.group(2)))
        for extra in re.finditer(r'\("([^"]+)",\s*"([^"]*)"\)', match.group(2)):
            fields.append((extra.group(1), extra.group(2)))
        seeds.append(render(fields))
    return seeds


def cesql_seeds():
    seeds = []
    directory = os.path.join(ROOT, "crates/herald-cesql/tests/cesql-tck")
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".yaml"):
            continue
        for line in read(os.path.join("crates/herald-cesql/tests/cesql-tck", name)).splitlines():
            match = re.match(r"\s*(?:- )?expression:\s*(.*)$", line)
            if not match:
                continue
            value = match.group(1).strip()
            if value.startswith("'") and value.endswith("'"):
                value = value[1:-1].replace("''", "'")
            elif value.startswith('"') and value.endswith('"'):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = value[1:-1]
            seeds.append(value)
    return seeds


def filter_tests():
    return read("crates/herald-core/src/filter/tests.rs") + read("crates/herald-core/src/filter/cel.rs")


def cel_seeds():
    seeds = [
        'type == "com.example.fuzz"',
        'data.a.b[2].c == "d" && source.startsWith("/")',
        "size(data.s) > 3 || has(data.n)",
        "int(data.n) < 0 ? true : false",
        'subject in ["s", "t"] && partitionkey.matches("^k")',
        "[1, 2, 3].all(x, x > 0) && {'a': 1}.a == 1",
        'timestamp(time) > timestamp("2025-01-01T00:00:00Z")',
    ]
    for text in raw_strings(filter_tests()):
        for match in re.finditer(r'"cel"\s*:\s*"((?:[^"\\]|\\.)*)"', text):
            try:
                seeds.append(json.loads(f'"{match.group(1)}"'))
            except ValueError:
                pass
    for match in re.finditer(r'Filter::Cel\(\s*"((?:[^"\\]|\\.)*)"', filter_tests()):
        seeds.append(json.loads(f'"{match.group(1)}"'))
    return seeds


def filter_json_seeds():
    seeds = [
        '[{"exact":{"type":"com.example.fuzz"}}]',
        '[{"prefix":{"source":"/fuzz"}},{"suffix":{"type":".fuzz"}}]',
        '{"all":[{"any":[{"sql":"type LIKE \'com.%\'"},{"cel":"data.n < 0"}]},{"not":{"exact":{"subject":"x"}}}]}',
    ]
    for text in raw_strings(filter_tests()):
        if text.lstrip().startswith(("[", "{")):
            seeds.append(text)
    return seeds


def delivery_seeds():
    seeds = [
        '{"backoff":{"exponential":{"initial":1000,"multiplier":2.0,"max_delay":3600000}},"jitter_percent":20,"max_attempts":10,"max_age":86400000,"terminal_status_codes":[400,410]}',
        '{"backoff":{"exponential":{"initial":1,"multiplier":1e300,"max_delay":18446744073709551615}},"jitter_percent":100,"max_attempts":1000,"max_age":1}',
        '{"rate_limit":{"per_second":5,"burst":2},"max_in_flight":3,"ordering":"key","on_dead_letter":"skip","content_mode":"binary"}',
    ]
    for path in ["crates/herald-core/src/retry/tests.rs", "crates/herald-core/src/subscription/delivery.rs", "crates/herald-core/src/subscription/tests.rs"]:
        for text in raw_strings(read(path)):
            if text.lstrip().startswith("{"):
                seeds.append(text)
                try:
                    document = json.loads(text)
                except ValueError:
                    continue
                for key in ("retry_policy", "delivery"):
                    if isinstance(document, dict) and key in document:
                        seeds.append(json.dumps(document[key]))
    return seeds


def network_seeds():
    seeds = ["127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "[::1]", "[::ffff:127.0.0.1]", "[64:ff9b::a00:1]", "[2002:a00:1::]", "[2001::53aa:64c:f5ff:fffe]", "169.254.169.254", "metadata.google.internal", "localhost.", "hooks.example.com", "10.0.0.0/8", "fd00::/8", "https://[fd00:ec2::254]/", "http://0x7f000001:8080/x"]
    for text in raw_strings(read("crates/herald-core/src/network/tests.rs")):
        if text and len(text) < 200:
            seeds.append(text)
    return seeds


def signature_seeds():
    """Signature headers (first line), timestamp, message id, then the payload; a genuine v1
    signature under the target's fixed secret, the Standard Webhooks vector, keys and KEK entries
    as the signing tests write them."""
    import base64
    import hmac

    secret = bytes(range(32))
    payload = '{"test": 2432232314}'
    msg_id, timestamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330"
    tag = hmac.new(secret, f"{msg_id}.{timestamp}.{payload}".encode(), "sha256").digest()
    genuine = "v1," + base64.b64encode(tag).decode()
    headers = [
        genuine,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1,bm9wZQ== " + genuine,
        "v1a," + base64.b64encode(bytes(64)).decode() + " v1,AAAA",
        "v1, v1a, v2,abc ,,, v1,====",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsk_" + base64.b64encode(bytes([7]) * 32).decode(),
        "whsk_" + base64.b64encode(bytes(64)).decode(),
        "whpk_" + base64.b64encode(bytes(32)).decode(),
        "key-2:" + base64.b64encode(bytes([9]) * 32).decode(),
        "xchacha20poly1305",
    ]
    seeds = [f"{header}\n{timestamp}\n{msg_id}\n{payload}" for header in headers]
    seeds += [f"{genuine}\n+{timestamp}\n{msg_id}\n{payload}", f"{genuine}\n -1 \nid.with.dots\n", f"{genuine}\n99999999999999999999\n\n"]
    for text in raw_strings(read("crates/herald-signing/src/tests.rs")):
        if text.startswith(("v1", "whsec_", "whsk_", "whpk_")) and len(text) < 300:
            seeds.append(f"{text}\n{timestamp}\n{msg_id}\n{payload}")
    return seeds


def subject_seeds():
    """Event types (first line), a second type, an ordering key; types from the subject tests."""
    seeds = [
        "com.shop.order.created\ncom.shop.\norder-42",
        "com.shop.\ncom.shop.order\nk",
        "a..b\n.\n",
        "\n\n",
        "with space.tab\t.star*.gt>\nu\u00e9\u4e2d.\U0001f600\nclé",
        "herald.events.3.com_2Eshop\nherald.events.*.>\n",
        "_.__.-\n_2E\n_zz",
        "x" * 1100 + "\nshort\nkey",
        ".".join(["t"] * 400) + "\n" + "p." * 100 + "\n",
    ]
    for text in raw_strings(read("crates/herald-core/src/subject/tests.rs")):
        if text and len(text) < 300 and "\n" not in text:
            seeds.append(f"{text}\n{text}.x\n{text}")
    return seeds


def stored_seeds():
    seeds = ["application/cloudevents+json\n\n" + text for text in structured_seeds()[:20]]
    seeds += ["application/json\n" + text for text in binary_seeds()]
    seeds += ["\n" + text for text in binary_seeds()[:5]]
    return seeds


def main():
    structured = structured_seeds()
    targets = {
        "structured_event": structured,
        "binary_event": binary_seeds(),
        "batch": ["[" + text + "]" for text in structured] + ["[" + ",".join(structured[:3]) + "]", "[]"],
        "stored_event": stored_seeds(),
        "cesql": cesql_seeds(),
        "cel": cel_seeds(),
        "filter_json": filter_json_seeds(),
        "delivery_settings": delivery_seeds(),
        "network": network_seeds(),
        "signature": signature_seeds(),
        "subject": subject_seeds(),
    }
    shutil.rmtree(SEEDS, ignore_errors=True)
    for target, seeds in targets.items():
        directory = os.path.join(SEEDS, target)
        os.makedirs(directory)
        unique = {seed.encode("utf-8", "surrogatepass") if isinstance(seed, str) else seed for seed in seeds}
        for seed in unique:
            name = hashlib.sha1(seed).hexdigest()
            with open(os.path.join(directory, name), "wb") as file:
                file.write(seed)
        print(f"seeds: {target}: {len(unique)}")


if __name__ == "__main__":
    main()
