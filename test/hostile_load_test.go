package test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The attacks of the hostile-client suite that take resources: huge messages, many recipients,
// slow clients, many connections, password guessing. See hostile_test.go.

// hRcpts is the recipient of the many-recipients attack.
const hRcpts = "many@example.test"

// attackHugeData sends 100 MB against the 10240000-octet limit with DATA and with BDAT, and
// announces it with SIZE: 552 5.3.4 each time, and the session stays in step (the next message
// on it is taken).
func attackHugeData(a *attackRun) {
	const total = 100 << 20
	line := strings.Repeat("0123456789", 9) + "abcdefgh\r\n" // 100 octets
	mb := strings.Repeat(line, (1<<20)/len(line))
	d := a.h.session(a, a.h.listeners()[0])
	send := func(prefix, suffix string) {
		a.Helper()
		d.conn.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		if _, err := d.conn.Write([]byte(prefix)); err != nil {
			a.Fatal(err)
		}
		for n := 0; n+len(mb) <= total; n += len(mb) {
			if _, err := d.conn.Write([]byte(mb)); err != nil {
				a.Fatalf("after %d MB: %v", n>>20, err)
			}
		}
		if _, err := d.conn.Write([]byte(suffix)); err != nil {
			a.Fatal(err)
		}
	}
	body := total / len(mb) * len(mb)

	a.tries++
	d.cmd("MAIL FROM:<"+hOutsider+"> SIZE="+strconv.Itoa(body), `552 5\.3\.4 Message size exceeds fixed limit`)

	a.tries++
	d.cmd("MAIL FROM:<"+hOutsider+">", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<"+hInbox+">", `250 2\.1\.5 Ok`)
	d.cmd("DATA", `354 .*`)
	send("", ".\r\n")
	d.expect(`552 5\.3\.4 Message size exceeds fixed limit`)
	d.cmd("NOOP", `250 2\.0\.0 Ok`)

	a.tries++
	d.cmd("MAIL FROM:<"+hOutsider+">", `250 2\.1\.0 Ok`)
	d.cmd("RCPT TO:<"+hInbox+">", `250 2\.1\.5 Ok`)
	send("BDAT "+strconv.Itoa(body)+" LAST\r\n", "")
	d.expect(`552 5\.3\.4 Message size exceeds fixed limit`)
	d.cmd("NOOP", `250 2\.0\.0 Ok`)

	tok := token(a.t)
	d.sendMessage(hOutsider, hInbox, "Subject: "+tok+"\r\n\r\nafter 200 MB refused\r\n")
	a.accept(hInbox, tok)
	quit(d)
}

// attackManyRcpts sends 10,000 RCPTs in one transaction (in pipelined groups of 100), then a
// transaction of 1,500 as Python's smtplib would send past RCPTMAX. The first 1,000 recipients
// are taken; the next 1,000 (limits.recipient_overshoot) get 452 4.5.3 without counting as
// errors, as with Postfix's smtpd_recipient_overshoot_limit, so a client that ignores RCPTMAX
// still gets its message to the first 1,000; only past them does each 452 count, and the
// error budget (limits.errors, 20) ends the session with 421.
func attackManyRcpts(a *attackRun) {
	const limit, overshoot, budget = 1000, 1000, 20
	rcpt := "RCPT TO:<" + hRcpts + ">\r\n"
	run := func(n int) (ok, over int, last string, open bool) {
		a.Helper()
		p, err := dialPeer("", a.h.tn.SMTP, 5*time.Second)
		if err != nil {
			a.Fatal(err)
		}
		defer p.c.Close()
		p.c.SetDeadline(time.Now().Add(2 * time.Minute))
		if err := p.script("", `220 .*`, "EHLO many.example.com\r\n", `250[ -](.|\n)*`, "MAIL FROM:<"+hOutsider+">\r\n", `250 2\.1\.0 Ok`); err != nil {
			a.Fatal(err)
		}
		for sent := 0; sent < n; sent += 100 {
			if _, err := p.c.Write([]byte(strings.Repeat(rcpt, 100))); err != nil {
				return ok, over, last, false
			}
			a.tries += 100
			for range 100 {
				got, err := p.reply()
				if err != nil {
					return ok, over, last, false
				}
				last = got
				switch {
				case got == "250 2.1.5 Ok" && over == 0:
					ok++
				case got == "452 4.5.3 Too many recipients":
					over++
				case strings.HasPrefix(got, "421 4.7.0 ") && strings.Contains(got, "too many errors"):
					if _, closed := p.closed(replyTimeout); !closed {
						a.Errorf("421 without the close")
					}
					return ok, over, last, false
				default:
					a.Errorf("RCPT %d: unexpected reply %q", ok+over+1, got)
					return ok, over, last, false
				}
			}
		}
		tok := token(a.t)
		if err := p.script("DATA\r\n", `354 .*`, "Subject: "+tok+"\r\n\r\nto many\r\n.\r\n", queuedRE, "QUIT\r\n", `221 .*`); err != nil {
			a.Errorf("after %d recipients: %v", n, err)
			return ok, over, last, true
		}
		a.accept(hRcpts, tok)
		return ok, over, last, true
	}

	ok, over, last, open := run(10000)
	a.note("10,000 RCPTs: %d taken, %d answered 452, then %q (session open: %v)", ok, over, last, open)
	if ok != limit || over != overshoot+budget || open || last != "421 4.7.0 mx.example.test Error: too many errors" {
		a.Errorf("10,000 RCPTs: %d taken, %d answered 452, then %q (session open: %v); want %d, %d, then 421 4.7.0 and the close",
			ok, over, last, open, limit, overshoot+budget)
	}

	ok, over, last, open = run(1500)
	a.note("1,500 RCPTs: %d taken, %d answered 452, then %q (message sent: %v)", ok, over, last, open)
	if !open || ok != limit || over != 500 {
		a.Errorf("1,500 RCPTs: %d taken, %d refused, last %q: want the message sent to the first %d", ok, over, last, limit)
	}
}

// slowPeer is one slowloris connection: it sends its script one octet a second until the server
// closes the connection or the attack's bound has passed.
type slowPeer struct {
	p      *peer
	start  time.Time
	last   string        // the last reply line the server sent
	closed time.Duration // when the server closed it, after start; 0 while open
}

// attackSlowloris holds 60 sessions that send one octet a second from six addresses, half of
// them while a command line is due, half inside DATA. A whole command line must arrive within
// limits.idle_timeout (5s here) and a whole DATA body within limits.data_timeout (10s here),
// however it trickles in, so each session is ended with 421 4.4.2, its goroutine and socket
// freed; meanwhile a normal client is served.
func attackSlowloris(a *attackRun) {
	const perPhase, bound = 30, 60 * time.Second
	h := a.h
	var peers []*slowPeer
	for i := range 2 * perPhase {
		from := fmt.Sprintf("127.0.0.%d", 20+i/10)
		p, err := dialPeer(from, h.tn.SMTP, 5*time.Second)
		if err != nil {
			a.Fatal(err)
		}
		defer p.c.Close()
		p.c.SetDeadline(time.Now().Add(replyTimeout))
		steps := []string{"", `220 .*`}
		if i >= perPhase {
			steps = append(steps, "EHLO slow.example.com\r\n", `250[ -](.|\n)*`,
				"MAIL FROM:<"+hOutsider+">\r\n", `250 .*`, "RCPT TO:<"+hInbox+">\r\n", `250 .*`, "DATA\r\n", `354 .*`)
		}
		if err := p.script(steps...); err != nil {
			a.Fatalf("slow client %d: %v", i, err)
		}
		peers = append(peers, &slowPeer{p: p, start: time.Now()})
		a.tries++
	}
	var wg sync.WaitGroup
	for i, sp := range peers {
		text := "EHLO slow.example.com\r\nNOOP\r\nNOOP\r\nNOOP\r\n"
		if i >= perPhase {
			text = "Subject: slow\r\n\r\n" + strings.Repeat("one octet a second\r\n", 10)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sp.trickle(text, bound)
		}()
	}
	// The slow clients are all there: a normal one must still be served.
	took, err := h.tryProbe(a)
	a.note("a normal client during the attack took %v", took.Round(time.Millisecond))
	if err != nil {
		a.Errorf("during the attack: %v", err)
	}
	wg.Wait()
	for phase, group := range [][]*slowPeer{peers[:perPhase], peers[perPhase:]} {
		var longest time.Duration
		cut := 0
		for i, sp := range group {
			switch {
			case sp.closed == 0:
				a.Errorf("slow client %d (%s) still open after %v", i, phaseNames[phase], bound)
			case sp.last != "421 4.4.2 mx.example.test Error: timeout exceeded":
				a.Errorf("slow client %d (%s): last reply %q, want 421 4.4.2 timeout exceeded", i, phaseNames[phase], sp.last)
			default:
				cut++
			}
			longest = max(longest, sp.closed)
		}
		a.note("%s: %d of %d slow sessions cut with 421 4.4.2; the longest lasted %v",
			phaseNames[phase], cut, len(group), longest.Round(100*time.Millisecond))
	}
}

// phaseNames are the two groups of slow clients.
var phaseNames = []string{"command line", "DATA"}

// trickle sends text one octet a second (over and over) and reads what the server says, until
// the server closes the connection or bound has passed.
func (sp *slowPeer) trickle(text string, bound time.Duration) {
	for i := 0; time.Since(sp.start) < bound; i++ {
		sp.p.c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := sp.p.c.Write([]byte{text[i%len(text)]}); err != nil {
			if !isTimeout(err) { // reset by the server
				sp.closed = time.Since(sp.start)
			}
			return
		}
		// Reading for a second paces the octets and notices the close.
		sp.p.c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			l, err := sp.p.r.ReadString('\n')
			if l = strings.TrimSpace(l); l != "" {
				sp.last = l
			}
			if err == nil {
				continue
			}
			if !isTimeout(err) {
				sp.closed = time.Since(sp.start)
				return
			}
			break
		}
	}
}

// attackFlood opens the whole connection limit (1,000 in total, 100 per address) from ten
// loopback addresses and holds what it gets, each connection kept alive with a NOOP every two
// seconds. The last 20% of the slots are a reserve (limits.connections_reserved_percent): once
// only they are free, a client holding connections_per_ip_busy (10) gets no more, and port 25
// takes only the first half of the reserve. So the flood gets between 800 and 900 connections,
// the rest 421 4.7.0, and meanwhile a normal client from another address is served on port 25
// and a user on submission, while a flooding address gets nothing more on either port.
func attackFlood(a *attackRun) {
	const addrs, perAddr = 10, 100
	const busyRE = `421 4\.7\.0 Server busy(: too many connections from 127\.0\.0\.\d+)?, try again later`
	h := a.h
	var (
		mu             sync.Mutex
		held           []*peer
		refused, fails atomic.Int32
	)
	defer func() {
		for _, p := range held {
			p.c.Close()
		}
	}()
	var wg sync.WaitGroup
	work := make(chan string)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range work {
				p, err := dialPeer(from, h.tn.SMTP, 5*time.Second)
				if err != nil {
					fails.Add(1)
					continue
				}
				p.c.SetReadDeadline(time.Now().Add(replyTimeout))
				g, err := p.reply()
				switch {
				case err == nil && strings.HasPrefix(g, "220 "):
					mu.Lock()
					held = append(held, p)
					mu.Unlock()
				case err == nil && regexp.MustCompile(`^`+busyRE+`$`).MatchString(g):
					refused.Add(1)
					p.c.Close()
				default:
					a.Logf("flood connection from %s: %q %v", from, g, err)
					fails.Add(1)
					p.c.Close()
				}
			}
		}()
	}
	for i := range addrs * perAddr {
		work <- fmt.Sprintf("127.0.0.%d", 30+i/perAddr)
		a.tries++
	}
	close(work)
	wg.Wait()
	a.note("%d connections held, %d refused with 421 4.7.0", len(held), refused.Load())
	if fails.Load() > 0 {
		a.Errorf("%d flood connections failed without a 220 or a 421 4.7.0", fails.Load())
	}
	if len(held) < 800 || len(held) > 900 {
		a.Errorf("the flood holds %d connections, want 800 to 900 (port 25 stops at half the reserve)", len(held))
	}

	// Keep them alive past the idle timeout while the normal clients come.
	stop := make(chan struct{})
	var alive sync.WaitGroup
	for _, p := range held {
		alive.Add(1)
		go func() {
			defer alive.Done()
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				p.c.SetDeadline(time.Now().Add(replyTimeout))
				if p.script("NOOP\r\n", `250 .*`) != nil {
					return
				}
			}
		}()
	}
	defer func() { close(stop); alive.Wait() }()

	// A newcomer on port 25 (the probe, from 127.0.0.1)...
	took, err := h.tryProbe(a)
	a.note("a normal client during the flood took %v", took.Round(time.Millisecond))
	if err != nil {
		a.Errorf("during the flood: %v", err)
	}
	// ...and a user who authenticates on submission are served.
	start := time.Now()
	err = func() error {
		p, err := dialPeer("", h.tn.Submission, 5*time.Second)
		if err != nil {
			return err
		}
		defer p.c.Close()
		p.c.SetDeadline(time.Now().Add(serveBound(a)))
		tok := token(a.t)
		err = p.script("", `220 .*`, "EHLO user.example.com\r\n", `250[ -](.|\n)*`,
			"AUTH PLAIN "+plainIR(hUser, hUserPW)+"\r\n", `235 .*`,
			"MAIL FROM:<"+hUser+">\r\n", `250 .*`, "RCPT TO:<"+hUser+">\r\n", `250 .*`, "DATA\r\n", `354 .*`,
			"Subject: "+tok+"\r\n\r\nduring the flood\r\n.\r\n", queuedRE, "QUIT\r\n", `221 .*`)
		if err == nil {
			a.accept(hUser, tok)
		}
		return err
	}()
	a.note("a user on submission during the flood took %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		a.Errorf("an authenticating user during the flood: %v", err)
	}
	// A flooding address gets nothing more, on either port: the last one, which came when the
	// server was busy and got its 10 (the first ones hold 100, connections_per_ip).
	for _, addr := range []string{h.tn.SMTP, h.tn.Submission} {
		a.tries++
		d := dialFrom(a, "127.0.0.39", addr)
		d.expect(`421 4\.7\.0 Server busy: too many connections from 127\.0\.0\.39, try again later`)
		d.expectClosed()
		d.conn.Close()
	}
}

// attackBruteForce guesses bob's password from four addresses, three connections each and the
// login spelled three ways, while bob logs in from his own address and sends mail. Failures
// count per resolved account (every spelling is bob@example.test) and block per client: with
// auth.max_failures = 3, each guessing address gets 535 three times, then 421 4.7.0 and the
// close, and 421 at its first AUTH on each later connection, even with the right password.
// Bob, from an address that has not been failing, is let in every time.
func attackBruteForce(a *attackRun) {
	const guessers, conns, maxFailures = 4, 3, 3
	const blockedRE = `421 4\.7\.0 Error: too many failed authentications, try again later`
	h := a.h
	logins := []string{"bob", hUser, strings.ToUpper(hUser)}
	var (
		guesses atomic.Int32
		wg      sync.WaitGroup
		replies = make([][]string, guessers) // the codes each address got, in order
	)
	done := make(chan struct{})
	for i := range guessers {
		from := fmt.Sprintf("127.0.0.%d", 50+i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for conn := range conns {
				p, err := dialPeer(from, h.tn.Submission, 5*time.Second)
				if err != nil {
					a.Errorf("%s: %v", from, err)
					return
				}
				p.c.SetDeadline(time.Now().Add(time.Minute))
				if err := p.script("", `220 .*`, "EHLO guess.example\r\n", `250[ -](.|\n)*`); err != nil {
					a.Errorf("%s: %v", from, err)
					p.c.Close()
					return
				}
				for n := 0; n < 10; n++ {
					guesses.Add(1)
					login := logins[(conn*10+n)%len(logins)]
					if _, err := p.c.Write([]byte("AUTH PLAIN " + plainIR(login, fmt.Sprintf("guess-%d-%d", conn, n)) + "\r\n")); err != nil {
						a.Errorf("%s: %v", from, err)
						break
					}
					got, err := p.reply()
					if err != nil {
						a.Errorf("%s: reading the reply to a guess: %v (%q)", from, err, got)
						break
					}
					replies[i] = append(replies[i], got[:min(3, len(got))])
					if strings.HasPrefix(got, "421 ") {
						if !regexp.MustCompile(`^` + blockedRE + `$`).MatchString(got) {
							a.Errorf("%s: %q, want %s", from, got, blockedRE)
						}
						if _, closed := p.closed(replyTimeout); !closed {
							a.Errorf("%s: 421 without the close", from)
						}
						break
					}
					if got != "535 5.7.8 Error: authentication failed" {
						a.Errorf("%s: guess answered %q", from, got)
					}
				}
				p.c.Close()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	// Bob, from his own address, meanwhile.
	bobs := 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		case <-time.After(500 * time.Millisecond):
		}
		d := ehlod(a, h.tn.Submission, false)
		d.cmd("AUTH PLAIN "+plainIR(hUser, hUserPW), `235 2\.7\.0 Authentication successful`)
		bobs++
		tok := token(a.t)
		d.sendMessage(hUser, hUser, "Subject: "+tok+"\r\n\r\nbob during a brute force\r\n")
		a.accept(hUser, tok)
		quit(d)
	}
	want := append(slices.Repeat([]string{"535"}, maxFailures), slices.Repeat([]string{"421"}, conns)...)
	for i, got := range replies {
		if !slices.Equal(got, want) {
			a.Errorf("127.0.0.%d got %v, want %v", 50+i, got, want)
		}
	}
	// A guesser that now has the right password is still refused.
	a.tries++
	d := dialFrom(a, "127.0.0.50", h.tn.Submission)
	d.expect(`220 .*`)
	d.ehlo("guess.example")
	d.cmd("AUTH PLAIN "+plainIR(hUser, hUserPW), blockedRE)
	d.expectClosed()
	d.conn.Close()

	a.tries += int(guesses.Load())
	a.note("%d AUTH commands from %d addresses (%d wrong passwords checked, then each address blocked); bob logged in %d times meanwhile",
		guesses.Load(), guessers, guessers*maxFailures, bobs)
	log := h.tn.Log()
	for i := range guessers {
		mustMatch(a, "log", log, fmt.Sprintf(`level=WARN msg="auth block started" kind=client remote=127\.0\.0\.%d client=127\.0\.0\.%d failures=%d `, 50+i, 50+i, maxFailures))
	}
	mustMatch(a, "log", log, `level=WARN msg="auth block started" kind=account user=bob@example\.test `)
}
