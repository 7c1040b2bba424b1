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

// SetListeners changes what a listener overrides, by name, for its new sessions.
func TestSetListenersNewSessionsOnly(t *testing.T) {
	ts := newTestServer(t, nil) // Serve: each listener named after its role
	before := ts.dial(t, RoleMX)
	before.run(`
		S: 220
		C: EHLO c
		S: 250-mx.example.test\n250-PIPELINING\n250-SIZE 10240000\n`)
	ts.srv.SetListeners([]Listener{
		{Name: "smtp", Role: RoleMX, MaxMessageSize: 3000},
		{Name: "submission", Role: RoleMX, MaxMessageSize: 4000}, // another role: ignored
	})
	ts.dial(t, RoleMX).run(`
		S: 220
		C: EHLO c
		S: 250-mx.example.test\n250-PIPELINING\n250-SIZE 3000\n`)
	ts.dial(t, RoleSubmission).run(`
		S: 220
		C: EHLO c
		S: 250-mx.example.test\n250-PIPELINING\n250-SIZE 10240000\n`)
	before.run(`
		C: MAIL FROM:<a@b.example> SIZE=5000
		S: 250`)
}
