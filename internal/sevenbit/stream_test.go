package sevenbit

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tern-mail/tern/internal/testutil"
)

// streamCases are messages for the streaming converter and the reference to agree on. They are
// written with LF and each is tried with LF and with CRLF.
var streamCases = []struct{ name, in string }{
	{"7-bit", "Subject: hi\n\nplain ascii\n"},
	{"8-bit text", "Content-Type: text/plain; charset=utf-8\n\nGrüße\n= \t\nend  \n"},
	{"no line end at the end", "MIME-Version: 1.0\n\nné"},
	{"body of CRs", "A: b\n\n\xe9\r\r\r"},
	{"LF then CR", "A: b\n\n\xe9\n\r"},
	{"binary", "Content-Type: application/octet-stream\n\n\x00\x80\xff\r\n\x01\n\n"},
	{"base64 of a multiple of 57 octets", "Content-Type: image/png\n\n" + strings.Repeat("\xff", 57*3) + "\n"},
	{"long 8-bit line", "Content-Type: text/plain\n\n" + strings.Repeat("ä", 200000) + "\nnext\n"},
	{"long binary line", "Content-Type: application/x\n\n" + strings.Repeat("\x80x\r", 100000) + "\n"},
	{"long 7-bit line then 8-bit", "Content-Type: text/plain\n\n" + strings.Repeat("a", 70000) + "\né\n"},
	{"CR at a piece's end", "Content-Type: text/plain\n\n" + strings.Repeat("b", readSize-1) + "\r\n" + "é\n"},
	{"long header field", "X-Long: " + strings.Repeat("v", 100000) + "\n\né\n"},
	{"long folded header field", "X-Long: " + strings.Repeat("v", 100000) + "\n " + strings.Repeat("w", 70000) + "\nContent-Type: text/html\n\né\n"},
	{"long lines around delimiters", "Content-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("p", readSize) + "\n--b\n\n" +
		strings.Repeat("x", readSize-1) + "\n--b\n\n" + strings.Repeat("\xe9", readSize+1) + "\n--b--\n" + strings.Repeat("e", 2*readSize)},
	{"long 7-bit part, then 8-bit", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: 8bit\n\n" +
		strings.Repeat("0123456789abcdef\n", 20000) + "--b\n\n\xe9\n--b--\n"},
	{"long line at the end, no line end", "Content-Type: text/plain\n\n" + strings.Repeat("\xe9 ", readSize)},
	{"long line that starts like a delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--b" + strings.Repeat("x", readSize) + "\xe9\n--b--\n"},
	{"long folded Content-Type", "Content-Type: text/plain;\n" + strings.Repeat(" x=y;\n", 2000) + " charset=utf-8\n\né\n"},
	{"folded CTE, second CTE", "Content-Transfer-Encoding:\n 8bit\nContent-Transfer-Encoding: base64\n\né\n"},
	{"second Content-Type", "Content-Type: application/x\nContent-Type: text/plain\n\né\n"},
	{"continuation first", " x: y\nContent-Type: text/plain\n\né\n"},
	{"field without colon", "Content-Type\n : text/html\n\né\n"},
	{"no separator", "A: b\nC: \xe9"},
	{"multipart", `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"
Content-Transfer-Encoding: 8bit

preamble
--b1
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 8bit

ascii part
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<p>café</p>
--b1
Content-Type: application/pdf

%PDF` + "\x80\x81" + `
--b1--
epilogue
`},
	{"multipart, delimiters with padding", "Content-Type: multipart/mixed; boundary=b\n\n--b \t\nContent-Type: text/plain\n\né\n--b--  \nepi\n"},
	{"multipart, no close delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\né\n--b\n\nü"},
	{"multipart, close first", "Content-Type: multipart/mixed; boundary=b\n\n--b--\n\xe9\n"},
	{"multipart, part without header", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n\xe9\n--b\n--b\nA: b\n--b--\n"},
	{"multipart, no delimiter", "Content-Type: multipart/mixed; boundary=b\n\né\n"},
	{"multipart, 8-bit preamble", "Content-Type: multipart/mixed; boundary=b\n\né\n--b\n\nx\n--b--\n"},
	{"multipart, 8-bit epilogue", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\né\n"},
	{"multipart, 7-bit with a base64 part", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n\nAAAA\n--b\n\né\n--b--\n"},
	{"multipart, 8-bit base64 part", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n\né\n--b--\n"},
	{"multipart without boundary", "Content-Type: multipart/mixed\n\né\n"},
	{"message/partial", "Content-Type: message/partial; id=x\n\né\n"},
	{"digest", "Content-Type: multipart/digest; boundary=q\n\n--q\n\nSubject: a\n\n\xe9\n--q\n\nSubject: b\n\nascii\n--q--\n"},
	{"nested", `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8

ü
--inner
Content-Type: text/plain

7-bit
--inner--

--outer
Content-Type: multipart/alternative; boundary=inner2

--inner2
Content-Type: text/plain

all 7-bit
--inner2--
--outer
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

Subject: inside
Content-Type: multipart/mixed; boundary=deep

--deep

ö
--deep--
--outer--
`},
	{"inner part cut by the outer delimiter", "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\né\n--o\n\nü\n--o--\n"},
	{"same boundary inside", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\né\n--b--\n"},
	{"inner boundary starts like the outer", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed; boundary=bb\n\n--bb\n\né\n--bb--\n--b--\n"},
	{"7-bit part with a line like the delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bx\n--b\n\né\n--b--\n"},
	{"8-bit part with a line like the delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bx é\n--b--\n"},
	{"encoded line like the delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n" + strings.Repeat("x", 75) + "--b ü\n--b--\n"},
	{"8-bit header in a 7-bit part", "Content-Type: multipart/mixed; boundary=b\n\n--b\nX: \xe9\n\nascii\n--b--\n"},
	{"8-bit header after a CTE", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\nX: \xe9\n\n\xe9\n--b--\n"},
	{"message/rfc822 without 8-bit", "Content-Type: message/rfc822\n\nSubject: x\n\nascii\n"},
	{"too deep", strings.Repeat("Content-Type: message/rfc822\n\n", 40) + "é\n"},
	{"deep but 7-bit", "Content-Type: multipart/mixed; boundary=b\n\n--b\n" + strings.Repeat("Content-Type: message/rfc822\n\n", 40) + "x\n--b\n\né\n--b--\n"},
	{"as deep as allowed", strings.Repeat("Content-Type: message/rfc822\n\n", 32) + "é\n"},
	{"many parts", "Content-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\n\nx\n--b\nContent-Type: multipart/mixed; boundary=c\n\n--c\n\ny\n--c--\n--b\n\né\n", 3000) + "--b--\n"},
	{"invalid Content-Type", "Content-Type: text/plain; charset=\"utf-8\"; charset=x\n\n\xc3\xa9\n"},
	{"empty message", ""},
	{"only 8-bit", "\xe9"},
	{"empty line first", "\r\n\xe9"},
}

// TestStreamMatchesReference converts each case, with LF and with CRLF, and through readers
// that return one octet at a time, and wants what the in-memory converter tern had before
// gives: the same octets or the same error. Convert keeps a small message converted in memory
// (its source has a size); the one-octet source, without a size, is converted at each Open.
func TestStreamMatchesReference(t *testing.T) {
	for _, tc := range streamCases {
		for _, nl := range []string{"LF", "CRLF"} {
			in := tc.in
			if nl == "CRLF" {
				in = crlf(in)
			}
			t.Run(tc.name+"/"+nl, func(t *testing.T) {
				want, wantErr := referenceConvert([]byte(in))
				got, err := Convert([]byte(in))
				if !sameResult(got, err, want, wantErr) {
					t.Fatalf("stream: %.300q, %v\nreference: %.300q, %v", got, err, want, wantErr)
				}
				if !Has8Bit([]byte(in)) {
					return
				}
				m, err := New(oneByteSource(in))
				if err == nil && m.cached != nil {
					t.Fatal("a source without a size kept in memory")
				}
				if err != nil {
					if !sameResult(nil, err, want, wantErr) {
						t.Fatalf("one octet at a time: %v, reference: %v", err, wantErr)
					}
					return
				}
				if m.Size() != int64(len(want)) {
					t.Errorf("Size %d, want %d", m.Size(), len(want))
				}
				rc, err := m.Open()
				if err != nil {
					t.Fatal(err)
				}
				got, err = io.ReadAll(rc)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("Open: %.300q, %v\nwant %.300q", got, err, want)
				}
				if err := rc.Close(); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func sameResult(got []byte, err error, want []byte, wantErr error) bool {
	if wantErr != nil || err != nil {
		return errors.Is(err, wantErr) && errors.Is(wantErr, err)
	}
	return bytes.Equal(got, want)
}

// oneByteSource reads its message one octet at a time.
type oneByteSource string

func (s oneByteSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(iotest.OneByteReader(strings.NewReader(string(s)))), nil
}

// TestStreamLimits shows where the stream refuses what the in-memory converter took: lines of
// more than 64 KiB that matter to the structure, and fields it must read of more than 64 KiB.
func TestStreamLimits(t *testing.T) {
	tests := []struct{ name, in string }{
		{"delimiter with long padding", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\né\n--b" + strings.Repeat(" ", readSize) + "\n--b--\n"},
		{"empty line of CRs", "Content-Type: text/plain\n" + strings.Repeat("\r", readSize) + "\n\né\n"},
		{"huge Content-Type", "Content-Type: text/plain; x=\"" + strings.Repeat("y", maxField) + "\"\n\né\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Convert([]byte(crlf(tc.in))); !errors.Is(err, ErrLongLine) || !Refused(err) {
				t.Errorf("error %v, want %v", err, ErrLongLine)
			}
		})
	}
	t.Run("too many parts", func(t *testing.T) {
		in := "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n", maxEntities) + "--b\r\n\r\n\xe9\r\n"
		if _, err := Convert([]byte(in)); !errors.Is(err, ErrStructure) {
			t.Errorf("error %v, want %v", err, ErrStructure)
		}
	})
}

// TestStreamReadError: the source's error comes back, and is not a refusal.
func TestStreamReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := New(errSource{boom})
	if !errors.Is(err, boom) || Refused(err) {
		t.Errorf("error %v, want %v and not a refusal", err, boom)
	}
}

type errSource struct{ err error }

func (s errSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.MultiReader(strings.NewReader("A: b\r\n\r\n\xe9"), iotest.ErrReader(s.err))), nil
}

// TestOpenClosedEarly: a reader closed before the end stops the goroutine that writes it,
// which then closes its source.
func TestOpenClosedEarly(t *testing.T) {
	closed := make(chan struct{}, 3)
	m, err := New(closeSource{eightBitSource(4 << 20), closed})
	if err != nil {
		t.Fatal(err)
	}
	<-closed // New's two readings
	<-closed
	rc, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer of a closed reader still reads its source")
	}
}

// closeSource says on closed when a reader of src is closed.
type closeSource struct {
	src    Source
	closed chan struct{}
}

func (s closeSource) Open() (io.ReadCloser, error) {
	rc, err := s.src.Open()
	return closeNotifier{rc, s.closed}, err
}

type closeNotifier struct {
	io.ReadCloser
	closed chan struct{}
}

func (c closeNotifier) Close() error {
	c.closed <- struct{}{}
	return c.ReadCloser.Close()
}

// TestOpenPanic: a panic while converting for a reader (a bug met by some message) is that
// reader's error, not the end of the process.
func TestOpenPanic(t *testing.T) {
	src := &panicOnOpen{src: eightBitSource(4 << 20), after: 2}
	m, err := New(src) // New's two readings
	if err != nil {
		t.Fatal(err)
	}
	rc, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, errPanicked) || !strings.Contains(err.Error(), "source bug") {
		t.Errorf("read: %v, want the conversion's panic", err)
	}
}

// panicOnOpen panics when opened more than after times.
type panicOnOpen struct {
	src   Source
	after int
}

func (s *panicOnOpen) Open() (io.ReadCloser, error) {
	if s.after == 0 {
		panic("source bug")
	}
	s.after--
	return s.src.Open()
}

// eightBitSource is a text message of about that many octets, 8-bit on every line.
type eightBitSource int

func (s eightBitSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(testutil.EightBitBody(int64(s)).Reader()), nil
}

// TestStreamBoundedMemory converts 4 and 16 MiB 8-bit messages: what it allocates does not
// grow with the size.
func TestStreamBoundedMemory(t *testing.T) {
	const maxAlloc = 1 << 20
	for _, size := range []int{4 << 20, 16 << 20} {
		var n int64
		var err error
		alloc := testutil.Allocated(func() {
			var m *Message
			if m, err = New(eightBitSource(size)); err == nil {
				n, err = m.WriteTo(io.Discard)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("allocated %d octets converting %d into %d", alloc, size, n)
		if alloc > maxAlloc {
			t.Errorf("converting %d octets allocated %d, want at most %d whatever the size", size, alloc, maxAlloc)
		}
	}
}

// FuzzStream: the streaming converter and the in-memory reference agree on any input, cut
// in reads of any size.
func FuzzStream(f *testing.F) {
	for _, tc := range streamCases {
		if len(tc.in) < 4096 {
			f.Add([]byte(crlf(tc.in)), uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		want, wantErr := referenceConvert(in)
		m, err := New(cutSource{in, int(cut)})
		var got []byte
		if err == nil {
			var b bytes.Buffer
			_, err = m.WriteTo(&b)
			got = b.Bytes()
			if err == nil && m.Size() != int64(len(got)) {
				t.Fatalf("Size %d, wrote %d", m.Size(), len(got))
			}
		}
		if !Has8Bit(in) && err == nil {
			got = in
		}
		// Both refusing is agreement, whatever reason each gives: a malformed structure can
		// show one of its faults first to a reader that sees the message in pieces (the remote
		// delivery's answer, 554 5.6.3, is the same).
		if Refused(err) && Refused(wantErr) {
			return
		}
		if !sameResult(got, err, want, wantErr) {
			t.Fatalf("input %q\nstream: %q, %v\nreference: %q, %v", in, got, err, want, wantErr)
		}
	})
}

// cutSource returns reads of at most n+1 octets.
type cutSource struct {
	b []byte
	n int
}

func (s cutSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(&cutReader{r: bytes.NewReader(s.b), n: s.n + 1}), nil
}

type cutReader struct {
	r *bytes.Reader
	n int
}

func (c *cutReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// BenchmarkStreamLarge is what remote does for a 16 MiB 8-bit message to a server without
// 8BITMIME: New (two readings), then one Open read through (DATA; DKIM signing would read it
// once more).
func BenchmarkStreamLarge(b *testing.B) {
	src := eightBitSource(16 << 20)
	b.SetBytes(16 << 20)
	b.ReportAllocs()
	for b.Loop() {
		m, err := New(src)
		if err != nil {
			b.Fatal(err)
		}
		rc, _ := m.Open()
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		_ = rc.Close() // read to the end
	}
}

// BenchmarkReferenceLarge is the in-memory converter on the same message, read whole first.
func BenchmarkReferenceLarge(b *testing.B) {
	b.SetBytes(16 << 20)
	b.ReportAllocs()
	for b.Loop() {
		rc, _ := eightBitSource(16 << 20).Open()
		msg, err := io.ReadAll(rc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := referenceConvert(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHas8Bit(t *testing.T) {
	for n := range 20 {
		b := bytes.Repeat([]byte{0x7f}, n)
		if Has8Bit(b) {
			t.Errorf("%d octets of 0x7f: 8-bit", n)
		}
		for i := range n {
			b[i] = 0x80
			if !Has8Bit(b) {
				t.Errorf("0x80 at %d of %d: not 8-bit", i, n)
			}
			b[i] = 0x7f
		}
	}
}

// TestCached: a message of at most 64 KiB is converted once and kept; a larger one is not.
func TestCached(t *testing.T) {
	for _, tc := range []struct {
		size   int
		cached bool
	}{{100, true}, {maxCached / 4, true}, {maxCached/4 + 1, false}} {
		in := "Content-Type: text/plain\r\n\r\n" + strings.Repeat("\xe9", tc.size-28)
		m, err := New(bytesSource(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.cached != nil; got != tc.cached {
			t.Errorf("%d octets: kept in memory %v, want %v", tc.size, got, tc.cached)
		}
		want, _ := referenceConvert([]byte(in))
		rc, _ := m.Open()
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, want) || m.Size() != int64(len(want)) {
			t.Errorf("%d octets: Open gives %d octets (%v), Size %d, want %d", tc.size, len(got), err, m.Size(), len(want))
		}
	}
}
