package smtpserver

import "testing"

// A reload (SetOptions) reaches the sessions opened after it; one opened before keeps the
// limits it started with.
func TestSetOptionsNewSessionsOnly(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxMessageSize = 1000 })
	before := ts.dial(t, RoleMX)
	before.run(`
		S: 220
		C: EHLO c
		S: 250-mx.example.test\n250-PIPELINING\n250-SIZE 1000\n`)
	o := ts.srv.Options()
	o.MaxMessageSize = 2000
	ts.srv.SetOptions(o)
	after := ts.dial(t, RoleMX)
	after.run(`
		S: 220
		C: EHLO c
		S: 250-mx.example.test\n250-PIPELINING\n250-SIZE 2000\n`)
	before.run(`
		C: MAIL FROM:<a@b.example> SIZE=1500
		S: 552 5.3.4`)
	after.run(`
		C: MAIL FROM:<a@b.example> SIZE=1500
		S: 250`)
}
