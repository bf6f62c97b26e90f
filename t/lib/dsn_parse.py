#!/usr/bin/env python3
"""dsn_parse.py - read one RFC 5322 message (a delivery status notice) and
print what the DSN tests check, as JSON on stdout.

    python3 t/lib/dsn_parse.py FILE

Only the standard library's email package (policy=email.policy.default).
Output (every value a string, list or object; missing fields are absent or
null):

  headers        From To Subject Auto-Submitted Message-ID In-Reply-To
                 References Content-Type MIME-Version Date (as the email
                 package reads them, unfolded; null when absent);
  raw_headers    the same fields as written, only unfolded (CR LF before
                 white space removed) and stripped: "From" keeps its quotes
                 and angle brackets
  header_counts  how often each of those fields appears
  from_name, from_addr, to_addr   display name and addr-spec of From/To
  content_type   the top-level type ("multipart/report")
  report_type    its report-type parameter; boundary its boundary
  parts          content types of the top-level parts, in order
  part1          the text of part 1 (text/plain), decoded
  part1_type     its content type; part1_charset its charset
  per_message    the per-message fields of the message/delivery-status
                 part (field name as written -> value)
  per_recipient  a list of the per-recipient field groups, same form
  ds_raw         the delivery-status part's body as text
  part3_type     content type of part 3 (text/rfc822-headers or
                 message/rfc822), or null
  returned_headers  the header fields of the returned message: a list of
                 [name, value] pairs in order
  returned_body  the body of the returned message (message/rfc822), or null
  returned_raw   part 3's body as text (text/rfc822-headers), or null
  defects        the parser's defect names for the whole message
  date_epoch     Date of the header, per_message_epoch / per_recipient_epoch
                 the date fields (Arrival-Date, Last-Attempt-Date,
                 Will-Retry-Until) of each block, as Unix seconds (null when
                 a date does not parse)
Exit status 0; 2 when the file cannot be read (message on stderr).
"""
import email
import email.parser
import email.policy
import email.utils
import json
import re
import sys

TOP = ["From", "To", "Subject", "Auto-Submitted", "Message-ID", "In-Reply-To",
       "References", "Content-Type", "MIME-Version", "Date"]


def fields(msg):
    """The header fields of a Message as an ordered dict (first wins)."""
    out = {}
    for name, value in msg.items():
        if name not in out:
            out[name] = str(value).strip()
    return out


def header_blocks(text):
    """Parse a delivery-status body by hand: blocks of header fields
    separated by empty lines."""
    blocks, cur, last = [], {}, None
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip() == "":
            if cur:
                blocks.append(cur)
            cur, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            cur[last] = (cur[last] + " " + line.strip()).strip()
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            name = name.strip()
            if name not in cur:
                cur[name] = value.strip()
            last = name
    if cur:
        blocks.append(cur)
    return blocks


DATE_FIELDS = ("Arrival-Date", "Last-Attempt-Date", "Will-Retry-Until")


def epoch(value):
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def dates_of(block):
    return {k: epoch(v) for k, v in block.items() if k in DATE_FIELDS}


def text_of(part):
    try:
        return part.get_content()
    except Exception:  # noqa: BLE001 - report what can be read
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return payload.decode("ascii", "replace")
        return str(part.get_payload())


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: dsn_parse.py FILE\n")
        return 2
    try:
        with open(sys.argv[1], "rb") as fh:
            raw = fh.read()
    except OSError as e:
        sys.stderr.write("dsn_parse.py: %s\n" % e)
        return 2
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    res = {"headers": {}, "header_counts": {}, "raw_headers": {}}
    for h in TOP:
        v = msg.get(h)
        res["headers"][h] = None if v is None else str(v).strip()
        res["header_counts"][h] = len(msg.get_all(h) or [])
        res["raw_headers"][h] = None
    for name, value in msg.raw_items():
        for h in TOP:
            if name.lower() == h.lower() and res["raw_headers"][h] is None:
                res["raw_headers"][h] = re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()
    for key, h in (("from", "From"), ("to", "To")):
        res[key + "_name"] = None
        res[key + "_addr"] = None
        try:
            addrs = msg[h].addresses if msg[h] is not None else ()
        except Exception:  # noqa: BLE001 - a header that does not parse
            addrs = ()
        if addrs:
            res[key + "_name"] = addrs[0].display_name
            res[key + "_addr"] = addrs[0].addr_spec
    res["content_type"] = msg.get_content_type()
    res["report_type"] = msg.get_param("report-type")
    res["boundary"] = msg.get_boundary()
    res["defects"] = [type(d).__name__ for d in msg.defects]
    parts = msg.get_payload() if msg.is_multipart() else []
    res["parts"] = [p.get_content_type() for p in parts]
    res["part1"] = None
    res["part1_type"] = None
    res["part1_charset"] = None
    res["per_message"] = None
    res["per_recipient"] = []
    res["ds_raw"] = None
    res["part3_type"] = None
    res["returned_headers"] = []
    res["returned_body"] = None
    res["returned_raw"] = None
    if len(parts) >= 1:
        p1 = parts[0]
        res["part1_type"] = p1.get_content_type()
        res["part1_charset"] = p1.get_content_charset()
        res["part1"] = text_of(p1)
    ds = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    if ds is not None:
        payload = ds.get_payload()
        if isinstance(payload, list):
            blocks = [fields(b) for b in payload]
            # the raw text: the blocks as the package read them
            res["ds_raw"] = "\n".join(b.as_string() for b in payload)
        else:
            res["ds_raw"] = str(payload)
            blocks = header_blocks(res["ds_raw"])
        blocks = [b for b in blocks if b]
        if blocks:
            res["per_message"] = blocks[0]
            res["per_recipient"] = blocks[1:]
    if len(parts) >= 3:
        p3 = parts[2]
        res["part3_type"] = p3.get_content_type()
        if p3.get_content_type() == "message/rfc822":
            inner = p3.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, email.message.Message):
                res["returned_headers"] = [[k, str(v)] for k, v in inner.items()]
                body = inner.get_payload()
                res["returned_body"] = body if isinstance(body, str) else inner.as_string()
        else:
            text = text_of(p3)
            res["returned_raw"] = text
            hdrs = email.parser.HeaderParser(policy=email.policy.default).parsestr(text)
            res["returned_headers"] = [[k, str(v)] for k, v in hdrs.items()]
    res["date_epoch"] = epoch(res["headers"]["Date"])
    res["per_message_epoch"] = dates_of(res["per_message"] or {})
    res["per_recipient_epoch"] = [dates_of(b) for b in res["per_recipient"]]
    json.dump(res, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
