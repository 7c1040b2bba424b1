"""Parse a delivery status notification (RFC 3464) with Python's email package, which nobody
here wrote, and print what it found as JSON for test/delivery_test.go.

Reads one message on standard input. The default (compat32) policy parses a
message/delivery-status part into its blocks of fields: the per-message block first, then one
per recipient. Every defect the parser noted, in any part, is reported.
"""
import email
import json
import sys

raw = sys.stdin.buffer.read()
msg = email.message_from_bytes(raw)
out = {
    "content_type": msg.get_content_type(),
    "report_type": msg.get_param("report-type"),
    "subject": msg["Subject"],
    "from": msg["From"],
    "to": msg["To"],
    "auto_submitted": msg["Auto-Submitted"],
    "defects": [],
    "parts": [],
    "per_message": {},
    "recipients": [],
    "returned_type": "",
    "returned": "",
    "human": "",
}


def note_defects(m, where):
    for d in m.defects:
        out["defects"].append("%s: %r" % (where, d))


note_defects(msg, "top level")
if msg.is_multipart():
    for part in msg.get_payload():
        ct = part.get_content_type()
        out["parts"].append(ct)
        note_defects(part, ct)
        if ct == "message/delivery-status":
            blocks = part.get_payload()
            for b in blocks:
                note_defects(b, ct + " block")
            if blocks:
                out["per_message"] = dict(blocks[0].items())
                out["recipients"] = [dict(b.items()) for b in blocks[1:]]
        elif ct == "message/rfc822":
            inner = part.get_payload()[0]
            note_defects(inner, ct)
            out["returned_type"] = ct
            out["returned"] = inner.as_string()
        elif ct == "text/rfc822-headers":
            out["returned_type"] = ct
            out["returned"] = part.get_payload(decode=True).decode("utf-8", "replace")
        elif ct == "text/plain":
            out["human"] = part.get_payload(decode=True).decode("utf-8", "replace")
print(json.dumps(out))
