package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/safeio"
)

// File names inside the directory given to LoadOrCreate.
const (
	certName = "cert.pem"
	keyName  = "key.pem"
)

const (
	// validity is how long a self-signed certificate lasts. Two years stays under the 825 days
	// that Apple's TLS clients (and so some MUAs on submission) accept for server certificates.
	validity = 2 * 365 * 24 * time.Hour
	// backdate covers peers whose clock is a little behind ours.
	backdate = time.Hour
	// renewBefore: a certificate this close to expiry is replaced at load, so that a server
	// that is restarted (or reloaded) daily never serves an expired one.
	renewBefore = 24 * time.Hour
)

// LoadOrCreate returns the certificate in dir/cert.pem and dir/key.pem, creating a self-signed
// one for hostname on first use (created reports that). dir is created (mode 0700) if missing.
//
// Existing files are reused. They are replaced by a new self-signed certificate (created is
// then true) if the certificate has expired or expires within 24 hours, or if either file does
// not parse; the replaced pair is kept as cert.pem.old and key.pem.old, because it may be an
// operator's. If only one of the two files exists, or both parse but do not belong together,
// LoadOrCreate returns an error and changes nothing: that is someone's half-finished work, not
// ours to overwrite.
//
// Crash safety: new files are first written as cert.pem.new and key.pem.new and synced, then
// renamed into place. A later call finishes an interrupted rename (if both new files are
// complete) or discards the new files (if not), so a crash never leaves a half-written key or a
// mismatched pair behind. Calls for the same dir must not run concurrently.
func LoadOrCreate(dir, hostname string) (cert tls.Certificate, created bool, err error) {
	return loadOrCreate(dir, hostname, time.Now)
}

// loadOrCreate is LoadOrCreate with a clock, so tests can make certificates that are already
// expired through the same code path.
func loadOrCreate(dir, hostname string, now func() time.Time) (tls.Certificate, bool, error) {
	if err := safeio.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := recoverPending(dir); err != nil {
		return tls.Certificate{}, false, err
	}
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	certPEM, haveCert, err := readIfExists(certPath)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	keyPEM, haveKey, err := readIfExists(keyPath)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	switch {
	case !haveCert && !haveKey:
		return create(dir, hostname, now(), nil)
	case !haveCert:
		return tls.Certificate{}, false, fmt.Errorf("%s exists but %s does not; refusing to overwrite it", keyPath, certPath)
	case !haveKey:
		return tls.Certificate{}, false, fmt.Errorf("%s exists but %s does not; refusing to overwrite it", certPath, keyPath)
	}
	old := &pemPair{cert: certPEM, key: keyPEM}

	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if parsesAsCert(certPEM) && parsesAsKey(keyPEM) {
			return tls.Certificate{}, false, fmt.Errorf("%s and %s do not match; refusing to overwrite them: %w", certPath, keyPath, err)
		}
		return create(dir, hostname, now(), old)
	}
	leaf := cert.Leaf
	if leaf == nil { // Only with GODEBUG=x509keypairleaf=0.
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return create(dir, hostname, now(), old)
		}
		cert.Leaf = leaf
	}
	if now().Add(renewBefore).After(leaf.NotAfter) {
		return create(dir, hostname, now(), old)
	}
	return cert, false, nil
}

// pemPair is a certificate and key in PEM form.
type pemPair struct {
	cert, key []byte
}

// create makes a new self-signed certificate valid from now and stores it in dir, first
// saving old (when not nil) as the .old files.
func create(dir, hostname string, now time.Time, old *pemPair) (tls.Certificate, bool, error) {
	p, err := generate(hostname, now)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if old != nil {
		if err := writeFileAtomic(filepath.Join(dir, keyName+".old"), old.key, 0o600); err != nil {
			return tls.Certificate{}, false, err
		}
		if err := writeFileAtomic(filepath.Join(dir, certName+".old"), old.cert, 0o644); err != nil {
			return tls.Certificate{}, false, err
		}
	}
	if err := writePair(dir, p); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err := tls.X509KeyPair(p.cert, p.key)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("loading the certificate just made: %w", err)
	}
	return cert, true, nil
}

// generate returns a new self-signed ECDSA P-256 certificate for hostname, valid from an hour
// before now for two years. It is for server authentication only (RFC 5280 §4.2.1.12), and names
// hostname and the loopback names so that local tools can connect too.
func generate(hostname string, now time.Time) (*pemPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	// RFC 5280 §4.1.2.2: a positive serial of up to 20 octets. A random 128-bit one is unique
	// without any state, which matters as every regeneration is a new certificate.
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	var serial *big.Int
	for serial == nil || serial.Sign() == 0 {
		if serial, err = rand.Int(rand.Reader, limit); err != nil {
			return nil, fmt.Errorf("generating serial: %w", err)
		}
	}
	dnsNames, ips := subjectAltNames(hostname)
	cn := hostname
	if cn == "" {
		cn = "localhost"
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key: %w", err)
	}
	return &pemPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// subjectAltNames returns the SANs for hostname: hostname itself (as an IP SAN if it is an
// address), "localhost", 127.0.0.1 and ::1. Clients match SANs, not the CN (RFC 6125 §6.4.4).
func subjectAltNames(hostname string) ([]string, []net.IP) {
	hostname = strings.TrimSuffix(hostname, ".")
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	if ip := net.ParseIP(hostname); ip != nil {
		if !ip.IsLoopback() {
			ips = append([]net.IP{ip}, ips...)
		}
	} else if hostname != "" && !strings.EqualFold(hostname, "localhost") {
		dnsNames = append([]string{hostname}, dnsNames...)
	}
	return dnsNames, ips
}

// parsesAsCert reports whether b holds a PEM certificate that parses.
func parsesAsCert(b []byte) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if block.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(block.Bytes)
			return err == nil
		}
	}
}

// parsesAsKey reports whether b holds a PEM private key that parses, in any of the encodings
// crypto/tls accepts.
func parsesAsKey(b []byte) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if block.Type != "PRIVATE KEY" && !strings.HasSuffix(block.Type, " PRIVATE KEY") {
			continue
		}
		if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			return true
		}
		if _, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
			return true
		}
		_, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		return err == nil
	}
}

// recoverPending finishes or undoes a replacement of the pair that a crash interrupted; see
// LoadOrCreate. writePair syncs both .new files before it renames either, so if they form a
// valid pair together with whatever is already in place, the crash happened between or during
// the renames and completing them is safe; otherwise it happened while writing and the old
// files are untouched.
func recoverPending(dir string) error {
	paths := [2]string{filepath.Join(dir, certName), filepath.Join(dir, keyName)}
	var cur [2][]byte
	var pending [2]bool
	for i, p := range paths {
		b, ok, err := readIfExists(p + pendingSuffix)
		if err != nil {
			return err
		}
		if ok {
			cur[i], pending[i] = b, true
			continue
		}
		if b, _, err = readIfExists(p); err != nil {
			return err
		}
		cur[i] = b
	}
	if !pending[0] && !pending[1] {
		return nil
	}
	_, err := tls.X509KeyPair(cur[0], cur[1])
	rollForward := err == nil
	for i, p := range paths {
		if !pending[i] {
			continue
		}
		if rollForward {
			err = renameFile(p+pendingSuffix, p)
		} else {
			err = removeFile(p + pendingSuffix)
		}
		if err != nil {
			return err
		}
	}
	return safeio.SyncDir(dir)
}
