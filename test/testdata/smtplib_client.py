#!/usr/bin/env python3
"""Drive Python's smtplib against tern, step by step, for the integration tests.

Usage: smtplib_client.py JSON

JSON: {"connect": "plain" | "ssl", "host": ..., "port": ..., "helo": ...,
       "steps": [[step, args...], ...]}
Steps:
  ["ehlo"]                         EHLO with the pinned name (smtplib would use the machine's FQDN)
  ["starttls"]                     STARTTLS without certificate checks (self-signed server)
  ["login", mech, user, password]  SMTP.login() with the mechanism pinned: smtplib picks the
                                   first of CRAM-MD5, PLAIN, LOGIN the server offers, so the
                                   offer it saw is cut down to mech first; a refusal
                                   (SMTPAuthenticationError) prints "EXCEPTION <name>"
                                   and then its code and text
  ["mail", from, [options]]        MAIL FROM with ESMTP parameters
  ["rcpt", to, [options]]          RCPT TO with ESMTP parameters
  ["data", text]                   DATA; text is sent UTF-8 encoded with CRLF line ends
  ["send_message", {from, to, subject, body}]   smtplib's own high-level path
  ["sendmail", from, [to...], text] SMTP.sendmail(): MAIL, one RCPT per recipient (smtplib
                                   ignores LIMITS RCPTMAX), DATA if any was accepted; prints
                                   "SENDMAIL accepted=N refused=M codes=[...]"; an exception
                                   prints "EXCEPTION <name> <text>" and ends the steps
  ["resend_refused", from, text]   sendmail() again to the recipients the last sendmail had
                                   refused with a 4xx, as a client retries them
  ["quit"]
Each step prints one line "STEP CODE TEXT" (the server's reply) to stdout; smtplib's debug
output (every line both ways) goes to stderr. Behaviour smtplib would otherwise pick by itself is
pinned here: the EHLO name, the TLS context, and the ESMTP options, which are always explicit.
"""
import json
import smtplib
import ssl
import sys
from email.message import EmailMessage


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def show(step, code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    print(step, code, text.replace("\n", "\\n"), flush=True)


def main():
    cfg = json.loads(sys.argv[1])
    helo = cfg["helo"]
    if cfg["connect"] == "ssl":
        s = smtplib.SMTP_SSL(cfg["host"], cfg["port"], local_hostname=helo, context=context(), timeout=10)
    else:
        s = smtplib.SMTP(cfg["host"], cfg["port"], local_hostname=helo, timeout=10)
    s.set_debuglevel(1)
    refused = {}
    for step in cfg["steps"]:
        name = step[0]
        if name == "ehlo":
            code, text = s.ehlo(helo)
            show("EHLO", code, text)
            print("FEATURES", " ".join(sorted(s.esmtp_features)), flush=True)
        elif name == "starttls":
            code, text = s.starttls(context=context())
            show("STARTTLS", code, text)
            print("CIPHER", " ".join(str(x) for x in s.sock.cipher()), flush=True)
        elif name == "login":
            mech, user, password = step[1], step[2], step[3]
            if "auth" not in s.esmtp_features:
                raise SystemExit("login: the server offered no AUTH")
            # smtplib joins the "AUTH mechs" and "AUTH=mechs" lines: each mechanism once, in order.
            offered = list(dict.fromkeys(s.esmtp_features["auth"].upper().split()))
            print("OFFERED", " ".join(offered), flush=True)
            s.esmtp_features["auth"] = mech
            try:
                code, text = s.login(user, password)
            except smtplib.SMTPAuthenticationError as e:
                print("EXCEPTION", type(e).__name__, flush=True)
                code, text = e.smtp_code, e.smtp_error
            show("LOGIN", code, text)
        elif name == "mail":
            code, text = s.mail(step[1], step[2])
            show("MAIL", code, text)
        elif name == "rcpt":
            code, text = s.rcpt(step[1], step[2])
            show("RCPT", code, text)
        elif name == "data":
            # smtplib fixes line ends only for str messages, which must be ASCII; UTF-8 text goes
            # as bytes, so the CRLFs are made here.
            text = step[1].replace("\r\n", "\n").replace("\n", "\r\n")
            code, text = s.data(text.encode("utf-8"))
            show("DATA", code, text)
        elif name == "send_message":
            a = step[1]
            m = EmailMessage()
            m["From"] = a["from"]
            m["To"] = a["to"]
            m["Subject"] = a["subject"]
            m.set_content(a["body"])
            refused = s.send_message(m, mail_options=(), rcpt_options=())
            show("SEND_MESSAGE", 0, "refused=" + json.dumps(refused))
        elif name in ("sendmail", "resend_refused"):
            if name == "sendmail":
                frm, to, text = step[1], step[2], step[3]
            else:
                frm, text = step[1], step[2]
                to = [a for a, (code, _) in refused.items() if 400 <= code < 500]
            try:
                refused = s.sendmail(frm, to, text)
            except smtplib.SMTPException as e:
                print("EXCEPTION", type(e).__name__, str(e)[:300].replace("\n", "\\n"), flush=True)
                break
            codes = sorted({code for code, _ in refused.values()})
            print("SENDMAIL", "accepted=%d" % (len(to) - len(refused)), "refused=%d" % len(refused),
                  "codes=" + json.dumps(codes), flush=True)
        elif name == "quit":
            code, text = s.quit()
            show("QUIT", code, text)
        else:
            raise SystemExit("unknown step " + name)


if __name__ == "__main__":
    main()
