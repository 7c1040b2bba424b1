package smtp_test

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/tern-mail/tern/internal/smtp"
)

func BenchmarkReadLine(b *testing.B) {
	const line = "MAIL FROM:<kenneth@oeey.com> SIZE=1000 BODY=8BITMIME\r\n"
	input := []byte(strings.Repeat(line, 1000))
	src := bytes.NewReader(input)
	r := bufio.NewReader(src)
	var scratch []byte
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := smtp.ReadLine(r, smtp.MaxMailLine, &scratch); err != nil {
			if err != io.EOF {
				b.Fatal(err)
			}
			src.Reset(input)
			r.Reset(src)
		}
	}
}

// message builds the dot-stuffed text of a message of about size octets in 72-character lines,
// as a mail client sends it after "354", without the terminator.
func message(size int) []byte {
	var m bytes.Buffer
	m.WriteString("From: Kenneth <kenneth@oeey.com>\r\nTo: <bob@example.com>\r\nSubject: benchmark\r\n\r\n")
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:72]
	for i := 0; m.Len() < size; i++ {
		if i%10 == 9 {
			m.WriteString("." + line[1:] + "\r\n") // now and then a line that needs stuffing
			continue
		}
		m.WriteString(line + "\r\n")
	}
	return dotStuff(m.Bytes())
}

func benchmarkReadData(b *testing.B, size int) {
	input := append(message(size), ".\r\n"...)
	src := bytes.NewReader(input)
	r := bufio.NewReader(src)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(input)
		r.Reset(src)
		if _, err := smtp.ReadData(r, io.Discard, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadData5K(b *testing.B) { benchmarkReadData(b, 5<<10) }
func BenchmarkReadData1M(b *testing.B) { benchmarkReadData(b, 1<<20) }

func BenchmarkParsePathArg(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		pa, err := smtp.ParsePathArg("FROM:<kenneth@oeey.com> SIZE=1000 BODY=8BITMIME", "FROM:")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := smtp.ParseReversePath(pa.Path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAddress(b *testing.B) {
	for _, addr := range []string{"kenneth@oeey.com", "Kenneth.Burgener+lists@Mail.OEEY.com", `"john doe"@oeey.com`, "bjørn@exämple.test"} {
		b.Run(addr, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := smtp.ParseAddress(addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTextChecker checks a 1 MB message handed over in one piece, as BDAT hands a chunk.
func BenchmarkTextChecker(b *testing.B) {
	input := message(1 << 20)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		var c smtp.TextChecker
		c.Write(input)
		if err := c.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTextCheckerFaulty checks 1 MB of bare CRs and NULs without an LF: the checker must stay
// linear in the input whatever it holds.
func BenchmarkTextCheckerFaulty(b *testing.B) {
	input := bytes.Repeat([]byte("a\r\x00"), 1<<20/3)
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		var c smtp.TextChecker
		c.Write(input)
		if c.Finish() == nil {
			b.Fatal("no fault found")
		}
	}
}

// BenchmarkDotWriter sends a 1 MB message through the dot-stuffing writer in 32 KiB writes, as
// delivery copies a queued message to a server.
func BenchmarkDotWriter(b *testing.B) {
	input := message(1 << 20)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		w := smtp.NewDotWriter(io.Discard, false)
		for p := input; len(p) > 0; {
			n := min(len(p), 32<<10)
			if _, err := w.Write(p[:n]); err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDotWriterBareCR normalizes 1 MB of bare CRs without an LF: linear whatever it holds.
func BenchmarkDotWriterBareCR(b *testing.B) {
	input := bytes.Repeat([]byte("a\r"), 1<<19)
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		w := smtp.NewDotWriter(io.Discard, true)
		if _, err := w.Write(input); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
